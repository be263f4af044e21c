from __future__ import annotations

from typing import cast

from fastapi import Request

from app.core.audit import Origin, request_origin
from app.core.security.keys import SigningKeys
from app.modules.users.container import UsersContainer
from app.modules.users.service import (
    AccountService,
    AdminService,
    AuditLog,
    AuthService,
    PasswordResetService,
)
from app.modules.users.settings import UsersSettings
from app.modules.users.verification import EmailVerificationService


def _container(request: Request) -> UsersContainer:
    return cast(UsersContainer, request.app.state.containers["users"])


async def account_service(request: Request) -> AccountService:
    return _container(request).accounts()


async def auth_service(request: Request) -> AuthService:
    return _container(request).auth()


async def admin_service(request: Request) -> AdminService:
    return _container(request).admin()


async def reset_service(request: Request) -> PasswordResetService:
    return _container(request).resets()


async def signing_keys(request: Request) -> SigningKeys:
    return _container(request).signing_keys()


async def users_settings(request: Request) -> UsersSettings:
    settings: UsersSettings = _container(request).settings()
    return settings


async def verification_service(request: Request) -> EmailVerificationService:
    return _container(request).verification()


async def audit_log_service(request: Request) -> AuditLog:
    return _container(request).audit()


async def caller_origin(request: Request) -> Origin:
    """Where the request came from (IP, request id), for the audit trail."""
    return request_origin(request)
