"""Deleting what Keystone no longer needs, on a schedule."""

from __future__ import annotations

from datetime import timedelta

from app.core.events.outbox import UnitOfWork
from app.core.logging import get_logger
from app.modules.users.repository import RetentionRepository
from app.modules.users.service.shared import now_utc

_log = get_logger("keystone.users")


class RetentionService:
    """Deletes what Keystone no longer needs: expired refresh and reset tokens, and audit rows
    older than AUDIT_RETENTION_DAYS. Run hourly by the worker; logs what it removed."""

    def __init__(self, uow: UnitOfWork, audit_retention_days: int) -> None:
        self._uow = uow
        self._audit_retention = timedelta(days=audit_retention_days)

    async def apply(self) -> dict[str, int]:
        now = now_utc()
        async with self._uow.begin() as tx:
            retention = RetentionRepository(tx.session)
            removed = await retention.delete_expired_tokens(now)
            removed["audit_rows"] = await retention.delete_audit_before(now - self._audit_retention)
        _log.info("retention applied", **removed)
        return removed
