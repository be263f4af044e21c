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

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def core_container(request: Request) -> CoreContainer:
    return cast(CoreContainer, request.app.state.core)


async def current_principal(request: Request, token: str | None = Depends(bearer)) -> Principal:
    if not token:
        raise UnauthorizedError("Not authenticated")
    principal = core_container(request).tokens().verify_access_token(token)
    user_id = str(principal.user_id)
    request.scope["state"]["user_id"] = user_id
    structlog.contextvars.bind_contextvars(user_id=user_id)
    return principal


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only when the caller holds `permission`."""

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.can(permission):
            raise ForbiddenError(f"This action needs the '{permission}' permission")
        return principal

    return check
