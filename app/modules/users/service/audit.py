"""The audit trail of the users module, and the page of it `GET /admin/audit-log` reads."""

from __future__ import annotations

from dataclasses import replace

from app.core.audit import AuditEntry
from app.core.events.outbox import UnitOfWork
from app.core.pagination import InvalidCursorError, KeysetPage, decode_cursor, keyset_page
from app.modules.users.models import AuditRecord
from app.modules.users.repository import AuditQuery, AuditRepository

# Sent by other processes' audit clients while users could not be reached (users/client.py).
RECORD_AUDIT_ENTRY_JOB = "users.record_audit_entry"


class AuditLog:
    """The users module's implementation of the core `AuditTrail` port: an append-only table.

    Services of this module write their successes in the transaction of the change itself
    (`AuditRepository(tx.session).add`); `record` is for failures, whose transaction is rolled
    back, and for other modules, through the port.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def record(self, entry: AuditEntry) -> None:
        async with self._uow.begin() as tx:
            await AuditRepository(tx.session).add(entry)

    async def search(
        self, limit: int, cursor: str | None, query: AuditQuery
    ) -> KeysetPage[AuditRecord]:
        if cursor is not None:
            position = decode_cursor(cursor, frozenset({"id"}))
            if not isinstance(position["id"], int) or position["id"] < 1:
                raise InvalidCursorError
            query = replace(query, before_id=position["id"])
        async with self._uow.begin() as tx:
            records = AuditRepository(tx.session)
            return await keyset_page(
                limit, lambda size: records.newest_first(size, query), lambda row: {"id": row.id}
            )
