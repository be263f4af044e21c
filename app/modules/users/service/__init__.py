"""Use cases of the users module: accounts, sessions (login, refresh, logout) and their admin.

A session is a family of refresh tokens. Logging in opens one; each refresh uses up the token
presented and adds the next to the family; presenting a used token again means it was stolen
(or replayed), so the whole family is revoked. Only SHA-256 digests of refresh tokens are
stored. Revoking a session also lists its id in Redis (`TokenRevocations`) so the access tokens
it issued stop working at once, not when they expire.

One file per use case: `accounts` (the holder's own account), `auth` (log in, refresh, log
out), `admin` (`users:manage`), `password_reset`, `audit`, `personal_data` (export),
`retention`; `sessions` and `shared` serve the others.
"""

from app.modules.users.service.accounts import SEND_VERIFICATION_EMAIL_JOB, AccountService
from app.modules.users.service.admin import AdminService
from app.modules.users.service.audit import RECORD_AUDIT_ENTRY_JOB, AuditLog
from app.modules.users.service.auth import AuthService
from app.modules.users.service.password_reset import (
    SEND_PASSWORD_RESET_JOB,
    PasswordResetService,
)
from app.modules.users.service.personal_data import UsersPersonalData
from app.modules.users.service.retention import RetentionService
from app.modules.users.service.sessions import IssuedTokens, Sessions
from app.modules.users.service.shared import new_secret_token, token_digest

__all__ = [
    "RECORD_AUDIT_ENTRY_JOB",
    "SEND_PASSWORD_RESET_JOB",
    "SEND_VERIFICATION_EMAIL_JOB",
    "AccountService",
    "AdminService",
    "AuditLog",
    "AuthService",
    "IssuedTokens",
    "PasswordResetService",
    "RetentionService",
    "Sessions",
    "UsersPersonalData",
    "new_secret_token",
    "token_digest",
]
