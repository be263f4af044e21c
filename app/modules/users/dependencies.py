from __future__ import annotations

from typing import cast

from fastapi import Request

from app.modules.users.container import UsersContainer
from app.modules.users.service import (
    AccountService,
    AdminService,
    AuditLog,
    AuthService,
    PasswordResetService,
)


def _container(request: Request) -> UsersContainer:
    return cast(UsersContainer, request.app.state.containers["users"])


def account_service(request: Request) -> AccountService:
    return _container(request).accounts()


def auth_service(request: Request) -> AuthService:
    return _container(request).auth()


def admin_service(request: Request) -> AdminService:
    return _container(request).admin()


def reset_service(request: Request) -> PasswordResetService:
    return _container(request).resets()


def audit_log_service(request: Request) -> AuditLog:
    return _container(request).audit()
