"""The transactional outbox and the unit of work that writes it.

A use case runs inside `UnitOfWork.begin()`; the events it publishes are inserted into the
module's own `outbox` table in the same transaction as the state change, so either both happen
or neither does. The insert fires a NOTIFY on the `keystone_outbox` channel (a trigger of each
module's migrations), so relays in every process wake at the commit; this process's own relay is
also woken directly. After the commit the requested jobs are enqueued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import tracing
from app.core.context import current_correlation_id
from app.core.db import Database
from app.core.events.base import IntegrationEvent
from app.core.jobs import JobQueue, JobRequest
from app.core.logging import get_logger
from app.core.tracing import current_traceparent

_log = get_logger("keystone.outbox")
# The key of an outbox row's payload that holds the W3C trace context of the span that wrote it
# (app/core/tracing.py); the relay takes it out before reading the event.
TRACEPARENT = "traceparent"


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("event_version", Integer, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column(
            "next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()
        ),
        Column("last_error", Text),
        Column("dispatched_at", DateTime(timezone=True)),
        # Events with one key are delivered in order (`IntegrationEvent.ordering_key`).
        Column("ordering_key", String(200)),
        # A relay's lease on the row while it delivers it outside any transaction; once
        # `claimed_until` has passed, another relay may take the row over.
        Column("claimed_by", String(100)),
        Column("claimed_until", DateTime(timezone=True)),
        Index(
            "ix_outbox_undispatched",
            "next_attempt_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index(
            "ix_outbox_undispatched_age",
            "occurred_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index(
            "ix_outbox_undispatched_by_key",
            "ordering_key",
            "occurred_at",
            postgresql_where=text("dispatched_at IS NULL AND ordering_key IS NOT NULL"),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Events this module's handlers have seen, keyed by (event, handler): a handler runs its
    effect once per event even when the relay delivers it again. `status` is processed, failed
    (will be retried) or dead (gave up: the dead letter, kept for an operator to read)."""
    return Table(
        "inbox",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("handler", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_inbox_dead", "status", postgresql_where=text("status = 'dead'")),
    )


class Transaction:
    """One open transaction of one module: its session plus what to do once it commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[IntegrationEvent] = []
        self.jobs: list[JobRequest] = []

    def publish(self, event: IntegrationEvent) -> None:
        self.events.append(event)

    def enqueue_after_commit(
        self, name: str, *args: object, defer_by: timedelta | None = None, job_id: str | None = None
    ) -> None:
        self.jobs.append(
            JobRequest(
                name=name,
                args=args,
                defer_by=defer_by,
                job_id=job_id,
                correlation_id=current_correlation_id(),
                traceparent=current_traceparent(),
            )
        )

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction; on failure its writes, events and jobs are all dropped."""
        events, jobs = len(self.events), len(self.jobs)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self.events[events:]
            del self.jobs[jobs:]
            raise


class UnitOfWork:
    def __init__(
        self,
        database: Database,
        outbox: Table,
        inbox: Table,
        jobs: JobQueue,
        on_events_committed: Callable[[str], None],
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.inbox = inbox
        self._jobs = jobs
        self._on_events_committed = on_events_committed

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Transaction]:
        async with self.database.sessions.begin() as session:
            tx = Transaction(session)
            yield tx
            if tx.events:
                await self._write_outbox(session, tx.events)
        if tx.events:
            self._on_events_committed(str(self.outbox.schema))
        for job in tx.jobs:
            await self._enqueue_committed(job)

    async def _enqueue_committed(self, job: JobRequest) -> None:
        # The transaction is committed: failing the request now would lie about what happened.
        # A job that could not be sent is logged; the module's cron sweep re-drives the work.
        try:
            await self._jobs.enqueue(job)
        except Exception:
            _log.exception("job not enqueued after commit", job=job.name, job_id=job.job_id)

    async def _write_outbox(self, session: AsyncSession, events: list[IntegrationEvent]) -> None:
        with tracing.span(
            "outbox write", attributes={"messaging.batch.message_count": len(events)}
        ):
            # The relay's delivery of these events continues the trace from this span.
            traceparent = tracing.current_traceparent()
            rows = [self._outbox_row(event, traceparent) for event in events]
            await session.execute(insert(self.outbox), rows)

    @staticmethod
    def _outbox_row(event: IntegrationEvent, traceparent: str | None) -> dict[str, object]:
        payload = event.model_dump(mode="json")
        if traceparent is not None:
            payload[TRACEPARENT] = traceparent
        return {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "event_version": event.event_version,
            "payload": payload,
            "occurred_at": event.occurred_at,
            "ordering_key": event.ordering_key(),
        }
