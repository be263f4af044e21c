"""FastAPI dependencies for authentication and permission checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.core.container import CoreContainer
from app.core.errors import ForbiddenError, UnauthorizedError
from app.core.security.rbac import Permission, Principal
from app.core.security.tokens import AccessToken

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def core_container(request: Request) -> CoreContainer:
    return cast(CoreContainer, request.app.state.core)


async def current_token(request: Request, token: str | None = Depends(bearer)) -> AccessToken:
    """The caller's verified, unrevoked access token (signature, claims, deny-lists)."""
    if not token:
        raise UnauthorizedError("Not authenticated")
    core = core_container(request)
    verified = core.tokens().verify_access_token(token)
    if await core.revocations().is_revoked(verified):
        raise UnauthorizedError("This token has been revoked")
    user_id = str(verified.principal.user_id)
    request.scope["state"]["user_id"] = user_id
    structlog.contextvars.bind_contextvars(user_id=user_id)
    return verified


async def current_principal(token: AccessToken = Depends(current_token)) -> Principal:
    return token.principal


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only when the caller holds `permission`."""

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.can(permission):
            raise ForbiddenError(f"This action needs the '{permission}' permission")
        return principal

    return check
