"""What the retention sweep deletes: expired tokens, and audit rows past their keep."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.users.models import (
    AuditRecord,
    EmailVerificationToken,
    PasswordResetToken,
    RefreshToken,
)


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def delete_expired_tokens(self, now: datetime) -> dict[str, int]:
        refresh = await self._session.execute(
            delete(RefreshToken).where(RefreshToken.expires_at < now)
        )
        reset = await self._session.execute(
            delete(PasswordResetToken).where(PasswordResetToken.expires_at < now)
        )
        verification = await self._session.execute(
            delete(EmailVerificationToken).where(EmailVerificationToken.expires_at < now)
        )
        return {
            "refresh_tokens": _count(refresh),
            "password_reset_tokens": _count(reset),
            "email_verification_tokens": _count(verification),
        }

    async def delete_audit_before(self, cutoff: datetime) -> int:
        # The append-only trigger lets a DELETE through only when this transaction says so.
        await self._session.execute(text("SET LOCAL keystone.audit_retention = 'on'"))
        result = await self._session.execute(
            delete(AuditRecord).where(AuditRecord.occurred_at < cutoff)
        )
        return _count(result)


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", 0)
    return int(rowcount or 0)
