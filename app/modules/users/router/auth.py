"""Signing in and out: register, log in, refresh, log out, password reset, email
verification, and the public keys tokens are signed with."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Response, status

from app.core.ratelimit.auth_limits import auth_rate_limit
from app.core.security.keys import SigningKeys
from app.modules.users.dependencies import auth_service, reset_service, signing_keys
from app.modules.users.password_policy import MAX_PASSWORD_LENGTH
from app.modules.users.router.shared import (
    INVALID,
    JSON,
    UNAUTHENTICATED,
    WEAK_PASSWORD,
    Accounts,
    CallerToken,
    From,
    Verification,
    router,
)
from app.modules.users.schemas import (
    EmailVerification,
    JsonWebKeySet,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    TokenOut,
    UserOut,
    normalise_email,
)
from app.modules.users.service import AuthService, IssuedTokens, PasswordResetService

Auth = Annotated[AuthService, Depends(auth_service)]
Resets = Annotated[PasswordResetService, Depends(reset_service)]

JWKS_CACHE_CONTROL = "public, max-age=300"
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many attempts from this address or for this account"},
    503: {"description": "Sign-in protection (Redis) unavailable; retry after Retry-After"},
}


def _tokens(issued: IssuedTokens) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


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
