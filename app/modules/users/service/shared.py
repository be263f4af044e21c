"""What the users module's use cases share: the clock, secret tokens, and the audit trail's
name for an account."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from uuid import UUID


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_token() -> str:
    """256 bits from the OS's CSPRNG: a digest of it cannot be brute-forced back."""
    return secrets.token_urlsafe(32)


def now_utc() -> datetime:
    return datetime.now(UTC)


def user_target(user_id: UUID) -> str:
    """How the audit trail names an account."""
    return f"user:{user_id}"
