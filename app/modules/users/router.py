from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from limits import parse as parse_rate_limit

from app.core.audit import Origin
from app.core.module import API_PREFIX
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, cursor_query
from app.core.ratelimit.auth_limits import auth_rate_limit, enforce
from app.core.security.dependencies import current_principal, current_token, require
from app.core.security.keys import SigningKeys
from app.core.security.rbac import Permission, Principal, Role
from app.core.security.tokens import AccessToken
from app.core.validation import Instant
from app.modules.users.dependencies import (
    account_service,
    admin_service,
    audit_log_service,
    auth_service,
    caller_origin,
    reset_service,
    signing_keys,
    verification_service,
)
from app.modules.users.password_policy import MAX_PASSWORD_LENGTH
from app.modules.users.repository import AuditQuery
from app.modules.users.schemas import (
    AuditEntryOut,
    EmailVerification,
    ErasureRequest,
    JsonWebKeySet,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    PersonalDataExport,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    RolesUpdate,
    TokenOut,
    UserAdminOut,
    UserOut,
    normalise_email,
)
from app.modules.users.service import (
    AccountService,
    AdminService,
    AuditLog,
    AuthService,
    IssuedTokens,
    PasswordResetService,
)
from app.modules.users.verification import EmailVerificationService

router = APIRouter(prefix=API_PREFIX)
Accounts = Annotated[AccountService, Depends(account_service)]
Auth = Annotated[AuthService, Depends(auth_service)]
Admin = Annotated[AdminService, Depends(admin_service)]
Resets = Annotated[PasswordResetService, Depends(reset_service)]
Audit = Annotated[AuditLog, Depends(audit_log_service)]
Verification = Annotated[EmailVerificationService, Depends(verification_service)]
Caller = Annotated[Principal, Depends(current_principal)]
From = Annotated[Origin, Depends(caller_origin)]
CallerToken = Annotated[AccessToken, Depends(current_token)]
UserManager = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
AuditReader = Depends(require(Permission.AUDIT_READ))

JSON = "application/json"
JWKS_CACHE_CONTROL = "public, max-age=300"
Responses = dict[int | str, dict[str, Any]]
INVALID: Responses = {422: {"description": "Invalid input (problem+json naming each field)"}}
UNAUTHENTICATED: Responses = {401: {"description": "Missing, invalid, expired or revoked token"}}
WEAK_PASSWORD: Responses = {
    422: {
        "description": "Invalid input, or a password the policy refuses; the problem type "
        "names the rule: password-length, password-too-common, password-contains-email, "
        "password-contains-personal-info, password-repetitive, password-sequence, "
        "password-keyboard-pattern or password-too-guessable"
    }
}
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many attempts from this address or for this account"},
    503: {"description": "Sign-in protection (Redis) unavailable; retry after Retry-After"},
}

ADMIN_PROBLEMS: Responses = {
    **UNAUTHENTICATED,
    403: {"description": "Needs the users:manage permission"},
    404: {"description": "No such user"},
    409: {"description": "Would leave no active admin"},
    **INVALID,
}


def _tokens(issued: IssuedTokens) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


# The signed-in user's read first: FastAPI tries routes in the order they are declared.
@router.get(
    "/users/me",
    response_model=UserOut,
    tags=["users"],
    summary="The signed-in user's account",
    responses={**UNAUTHENTICATED},
)
async def me(token: CallerToken, accounts: Accounts) -> Response:
    # The hot read of every signed-in client: serialised once here, not validated again against
    # the response model, and one dependency (the token) rather than two.
    profile = UserOut.model_validate(await accounts.profile(token.principal.user_id))
    return Response(profile.model_dump_json(), media_type=JSON)


@router.get(
    "/auth/jwks.json",
    response_model=JsonWebKeySet,
    tags=["auth"],
    summary="The public keys access tokens are signed with (JWK Set, RFC 7517)",
)
async def jwks(keys: Annotated[SigningKeys, Depends(signing_keys)]) -> Response:
    # Public and rarely changing; a verifier fetches again anyway when it meets an unknown kid.
    body = JsonWebKeySet.model_validate(keys.jwks()).model_dump_json()
    return Response(body, media_type=JSON, headers={"Cache-Control": JWKS_CACHE_CONTROL})


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    tags=["auth"],
    summary="Create a customer account",
    responses={409: {"description": "Email already registered"}, **WEAK_PASSWORD, **AUTH_PROBLEMS},
    dependencies=[Depends(auth_rate_limit("email"))],
)
async def register(body: RegisterRequest, accounts: Accounts) -> UserOut:
    user = await accounts.register(body.email, body.password, body.full_name)
    return UserOut.model_validate(user)


@router.post(
    "/auth/login",
    response_model=TokenOut,
    tags=["auth"],
    summary="Exchange email and password for an access and a refresh token (OAuth2 password flow)",
    responses={401: {"description": "Incorrect email or password"}, **INVALID, **AUTH_PROBLEMS},
    dependencies=[Depends(auth_rate_limit("username"))],
)
async def login(
    username: Annotated[
        str, Form(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$", description="The account's email")
    ],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    auth: Auth,
    origin: From,
) -> TokenOut:
    return _tokens(await auth.log_in(normalise_email(username), password, origin))


@router.post(
    "/auth/refresh",
    response_model=TokenOut,
    tags=["auth"],
    summary="Trade a refresh token for new tokens; the one presented stops working",
    responses={
        401: {"description": "Invalid, expired, revoked or reused refresh token"},
        **INVALID,
    },
)
async def refresh(body: RefreshRequest, auth: Auth, origin: From) -> TokenOut:
    return _tokens(await auth.refresh(body.refresh_token, origin))


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    summary="End this session: its refresh tokens and this access token stop working",
    responses={**UNAUTHENTICATED},
)
async def logout(token: CallerToken, auth: Auth, origin: From) -> Response:
    await auth.log_out(token, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty 202, documented without a body
    tags=["auth"],
    summary="Ask for a password-reset email; the answer is the same whether the account exists",
    responses={**INVALID, **AUTH_PROBLEMS},
    dependencies=[Depends(auth_rate_limit("email"))],
)
async def request_password_reset(body: PasswordResetRequest, resets: Resets) -> Response:
    await resets.request_reset(body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/auth/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    summary="Set a new password with the emailed token; every session of the account ends",
    responses={
        400: {"description": "Invalid, expired or used token"},
        **WEAK_PASSWORD,
        **AUTH_PROBLEMS,
    },
    dependencies=[Depends(auth_rate_limit("token"))],
)
async def confirm_password_reset(
    body: PasswordResetConfirm, resets: Resets, origin: From
) -> Response:
    await resets.confirm(body.token, body.new_password, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    summary="Verify the account's email with the emailed token (single use, expiring)",
    responses={
        400: {"description": "Invalid, expired or used token"},
        **INVALID,
        **AUTH_PROBLEMS,
    },
    dependencies=[Depends(auth_rate_limit("token"))],
)
async def verify_email(
    body: EmailVerification, verification: Verification, origin: From
) -> Response:
    await verification.verify(body.token, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _verification_email_limit(request: Request, principal: Caller) -> None:
    """Per account: a signed-in user cannot flood their own inbox (or the mail provider)."""
    limit = request.app.state.runtime.settings.rate_limit_verification_email
    await enforce(request, parse_rate_limit(limit), "verification-email", str(principal.user_id))


@router.post(
    "/users/me/verification-email",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty 202, documented without a body
    tags=["users"],
    summary="Send another email to verify the signed-in account's address",
    responses={
        **UNAUTHENTICATED,
        409: {"description": "The email is verified already"},
        429: {"description": "Too many verification emails asked for this account"},
        503: {"description": "Abuse protection (Redis) unavailable; retry after Retry-After"},
    },
    dependencies=[Depends(_verification_email_limit)],
)
async def send_verification_email(principal: Caller, verification: Verification) -> Response:
    await verification.request_email(principal.user_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.patch(
    "/users/me",
    response_model=UserOut,
    tags=["users"],
    summary="Change one's own full name",
    responses={**UNAUTHENTICATED, **INVALID},
)
async def update_me(body: ProfileUpdate, principal: Caller, accounts: Accounts) -> UserOut:
    return UserOut.model_validate(await accounts.update_profile(principal.user_id, body.full_name))


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["users"],
    summary="Change one's password (the current one is required); other sessions end",
    responses={
        **UNAUTHENTICATED,
        403: {"description": "The current password is wrong"},
        **WEAK_PASSWORD,
    },
)
async def change_password(
    body: PasswordChange, token: CallerToken, accounts: Accounts, origin: From
) -> Response:
    await accounts.change_password(token, body.current_password, body.new_password, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/users/me/export",
    response_model=PersonalDataExport,
    tags=["users"],
    summary="Everything Keystone holds about the caller, each module contributing its part",
    responses={**UNAUTHENTICATED},
)
async def export_me(principal: Caller, accounts: Accounts) -> PersonalDataExport:
    modules = await accounts.export(principal.user_id)
    return PersonalDataExport(
        user_id=principal.user_id, exported_at=datetime.now(UTC), modules=modules
    )


@router.delete(
    "/users/me",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["users"],
    summary="Erase one's account (password required): anonymised, disabled, forgotten by all",
    responses={
        **UNAUTHENTICATED,
        403: {"description": "The password is wrong"},
        409: {"description": "The last active admin cannot erase themselves"},
        **INVALID,
    },
)
async def erase_me(
    body: ErasureRequest, token: CallerToken, accounts: Accounts, origin: From
) -> Response:
    await accounts.erase(token, body.password, origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/users",
    response_model=Page[UserAdminOut],
    dependencies=[Depends(require(Permission.USERS_MANAGE))],
    tags=["admin"],
    summary="List accounts, newest first, by email fragment or role (cursor pagination)",
    responses={400: {"description": "Invalid cursor"}, **ADMIN_PROBLEMS},
)
async def list_users(
    admin: Admin,
    email: Annotated[str | None, Query(min_length=1, max_length=320)] = None,
    role: Role | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, cursor_query(max_length=500)] = None,
) -> Page[UserAdminOut]:
    page = await admin.list_users(limit, cursor, email, role)
    return Page[UserAdminOut](
        items=[UserAdminOut.of(user) for user in page.items], next_cursor=page.next_cursor
    )


@router.put(
    "/users/{user_id}/roles",
    response_model=UserAdminOut,
    tags=["admin"],
    summary="Replace an account's roles; its sessions end so new tokens carry the new roles",
    responses=ADMIN_PROBLEMS,
)
async def set_roles(
    user_id: UUID, body: RolesUpdate, actor: UserManager, admin: Admin, origin: From
) -> UserAdminOut:
    return UserAdminOut.of(await admin.set_roles(actor, user_id, frozenset(body.roles), origin))


@router.post(
    "/users/{user_id}/disable",
    response_model=UserAdminOut,
    tags=["admin"],
    summary="Disable an account: it cannot log in and its tokens stop working at once",
    responses=ADMIN_PROBLEMS,
)
async def disable_user(
    user_id: UUID, actor: UserManager, admin: Admin, origin: From
) -> UserAdminOut:
    return UserAdminOut.of(await admin.disable(actor, user_id, origin))


@router.get(
    "/admin/audit-log",
    response_model=Page[AuditEntryOut],
    dependencies=[AuditReader],
    tags=["admin"],
    summary="The audit log, newest first, by actor, action and time range (cursor pagination)",
    responses={
        **UNAUTHENTICATED,
        400: {"description": "Invalid cursor"},
        403: {"description": "Needs the audit:read permission"},
        **INVALID,
    },
)
async def audit_log(
    audit: Audit,
    actor: UUID | None = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[Instant | None, Query(description="inclusive")] = None,
    until: Annotated[Instant | None, Query(description="exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, cursor_query(max_length=500)] = None,
) -> Page[AuditEntryOut]:
    query = AuditQuery(actor_id=actor, action=action, since=since, until=until)
    page = await audit.search(limit, cursor, query)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )
