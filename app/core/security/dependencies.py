"""FastAPI dependencies for authentication and permission checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.core.audit import AuditEntry, Outcome, request_origin
from app.core.container import CoreContainer
from app.core.errors import DomainError, ForbiddenError, UnauthorizedError
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
    verified = await core.tokens().verify_access_token(token)
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


def audited(action: str) -> Any:
    """A dependency that records the endpoint in the audit trail (`core.audit`): who called
    it, on which path, and whether it succeeded or which rule refused it. For admin writes of
    any module: `dependencies=[audited("catalog.product_create")]` after the permission check.
    """

    async def record(
        request: Request, principal: Principal = Depends(current_principal)
    ) -> AsyncIterator[None]:
        trail = core_container(request).audit()
        entry = AuditEntry(
            action,
            Outcome.SUCCESS,
            principal.user_id,
            f"{request.method} {request.url.path}",
            request_origin(request),
        )
        try:
            yield
        except DomainError as error:
            await trail.record(
                replace(entry, outcome=Outcome.FAILURE, detail={"error": error.code})
            )
            raise
        await trail.record(entry)

    # scope="function": the entry is written before the response leaves, not after it.
    return Depends(record, scope="function")
