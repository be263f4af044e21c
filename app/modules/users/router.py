from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, status

from app.core.module import API_PREFIX
from app.core.ratelimit import auth_rate_limit
from app.core.security.dependencies import current_principal
from app.core.security.rbac import Principal
from app.modules.users.dependencies import account_service
from app.modules.users.schemas import (
    MAX_PASSWORD_LENGTH,
    RegisterRequest,
    TokenOut,
    UserOut,
    normalise_email,
)
from app.modules.users.service import AccountService

router = APIRouter(prefix=API_PREFIX)
Accounts = Annotated[AccountService, Depends(account_service)]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input (problem+json naming each field)"}
}
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many attempts from this address or for this account"},
    503: {"description": "Sign-in protection (Redis) unavailable; retry after Retry-After"},
}


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    tags=["auth"],
    summary="Create a customer account",
    responses={409: {"description": "Email already registered"}, **PROBLEMS, **AUTH_PROBLEMS},
    dependencies=[Depends(auth_rate_limit("email"))],
)
async def register(body: RegisterRequest, accounts: Accounts) -> UserOut:
    user = await accounts.register(body.email, body.password, body.full_name)
    return UserOut.model_validate(user)


@router.post(
    "/auth/login",
    response_model=TokenOut,
    tags=["auth"],
    summary="Exchange email and password for a bearer access token (OAuth2 password flow)",
    responses={401: {"description": "Incorrect email or password"}, **PROBLEMS, **AUTH_PROBLEMS},
    dependencies=[Depends(auth_rate_limit("username"))],
)
async def login(
    username: Annotated[
        str, Form(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$", description="The account's email")
    ],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    accounts: Accounts,
) -> TokenOut:
    issued = await accounts.log_in(normalise_email(username), password)
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in)


@router.get(
    "/users/me",
    response_model=UserOut,
    tags=["users"],
    summary="The signed-in user's account",
    responses={401: {"description": "Missing or invalid token"}},
)
async def me(
    principal: Annotated[Principal, Depends(current_principal)], accounts: Accounts
) -> UserOut:
    return UserOut.model_validate(await accounts.get(principal.user_id))
