"""Queries of the users module, one file per kind of row: `accounts`, `tokens` (refresh,
password-reset and email-verification), `audit` and `retention`."""

from app.modules.users.repository.accounts import UserReader, UserRepository
from app.modules.users.repository.audit import AuditQuery, AuditRepository
from app.modules.users.repository.retention import RetentionRepository
from app.modules.users.repository.tokens import (
    EmailVerificationRepository,
    PasswordResetRepository,
    RefreshTokenRepository,
)

__all__ = [
    "AuditQuery",
    "AuditRepository",
    "EmailVerificationRepository",
    "PasswordResetRepository",
    "RefreshTokenRepository",
    "RetentionRepository",
    "UserReader",
    "UserRepository",
]
