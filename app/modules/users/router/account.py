"""The signed-in user's own account: read, rename, change password, export, erase, and ask
for another verification email."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Response, status
from limits import parse as parse_rate_limit

from app.core.ratelimit.auth_limits import enforce
from app.modules.users.dependencies import users_settings
from app.modules.users.router.shared import (
    INVALID,
    JSON,
    UNAUTHENTICATED,
    WEAK_PASSWORD,
    Accounts,
    Caller,
    CallerToken,
    From,
    Verification,
    router,
)
from app.modules.users.schemas import (
    ErasureRequest,
    PasswordChange,
    PersonalDataExport,
    ProfileUpdate,
    UserOut,
)
from app.modules.users.settings import UsersSettings

OwnSettings = Annotated[UsersSettings, Depends(users_settings)]


# First in this file, and this file imported first (see __init__): the hot read.
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


async def _verification_email_limit(
    request: Request, principal: Caller, settings: OwnSettings
) -> None:
    """Per account: a signed-in user cannot flood their own inbox (or the mail provider)."""
    limit = settings.rate_limit_verification_email
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
