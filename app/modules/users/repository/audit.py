"""The audit log: append-only, one row per entry id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditEntry
from app.modules.users.models import AuditRecord


@dataclass(frozen=True)
class AuditQuery:
    before_id: int | None = None
    actor_id: UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: AuditEntry) -> None:
        """Once per `entry_id`: an entry recorded again (a retried call) is not stored twice."""
        await self._session.execute(
            pg_insert(AuditRecord)
            .values(
                entry_id=entry.entry_id,
                occurred_at=entry.occurred_at,
                actor_id=entry.actor_id,
                action=entry.action,
                target=entry.target,
                outcome=entry.outcome.value,
                ip=entry.origin.ip,
                request_id=entry.origin.request_id,
                detail=dict(entry.detail),
            )
            .on_conflict_do_nothing(index_elements=[AuditRecord.entry_id])
        )

    async def by_actor(self, actor_id: UUID) -> list[AuditRecord]:
        statement = select(AuditRecord).where(AuditRecord.actor_id == actor_id)
        return list((await self._session.execute(statement.order_by(AuditRecord.id))).scalars())

    async def newest_first(self, limit: int, query: AuditQuery) -> list[AuditRecord]:
        statement = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if query.before_id is not None:
            statement = statement.where(AuditRecord.id < query.before_id)
        if query.actor_id is not None:
            statement = statement.where(AuditRecord.actor_id == query.actor_id)
        if query.action is not None:
            statement = statement.where(AuditRecord.action == query.action)
        if query.since is not None:
            statement = statement.where(AuditRecord.occurred_at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditRecord.occurred_at < query.until)
        return list((await self._session.execute(statement)).scalars())
