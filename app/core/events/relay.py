"""The relay: reads committed, undelivered outbox rows and hands them to the bus.

It sweeps at start (so an event committed just before a crash is delivered after restart), when
woken by a commit, and every `outbox_poll_interval_s`. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, so the API and the worker may both run a relay safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, Table, func, select, update

from app.core.db import Database
from app.core.events.base import event_class
from app.core.events.bus import EventBus
from app.core.events.outbox import TRACEPARENT
from app.core.logging import get_logger

_log = get_logger("keystone.relay")
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class OutboxSource:
    module: str
    database: Database
    outbox: Table


class EventRelay:
    def __init__(
        self,
        bus: EventBus,
        sources: list[OutboxSource],
        *,
        batch_size: int,
        poll_interval_s: float,
        retry_base_s: float,
    ) -> None:
        self._bus = bus
        self._sources = sources
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retry_base_s = retry_base_s
        self._stopping = False

    async def run_once(self) -> int:
        """Deliver one batch from every outbox; returns how many rows settled. One module's
        outbox failing (its database, a bug) does not hold back the others."""
        settled = 0
        for source in self._sources:
            try:
                settled += await self._drain(source)
            except Exception:
                _log.exception("outbox pass failed; retrying at next poll", module=source.module)
        return settled

    async def run_forever(self) -> None:
        """Relay until `stop()`: the batch in hand is finished first, never cut in the middle."""
        while not self._stopping:
            while await self.run_once() >= self._batch_size and not self._stopping:
                pass
            if not self._stopping:
                await self._bus.wait_for_events(self._poll_interval_s)

    def prepare_start(self) -> None:
        """Called before `run_forever` is scheduled, so a `stop()` right after is not lost."""
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._bus.notify()

    async def _drain(self, source: OutboxSource) -> int:
        outbox = source.outbox
        settled = 0
        async with source.database.session() as session:
            rows = (
                await session.execute(
                    select(outbox)
                    .where(outbox.c.dispatched_at.is_(None), outbox.c.next_attempt_at <= func.now())
                    .order_by(outbox.c.occurred_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                problem = await self._deliver_row(row)
                if problem is None:
                    settled += 1
                    values: dict[str, object] = {"dispatched_at": func.now()}
                else:
                    delay = min(self._retry_base_s * 2 ** min(row.attempts, 16), MAX_BACKOFF_S)
                    values = {
                        "attempts": row.attempts + 1,
                        "next_attempt_at": func.now() + timedelta(seconds=delay),
                        "last_error": problem[:2000],
                    }
                await session.execute(
                    update(outbox).where(outbox.c.event_id == row.event_id).values(**values)
                )
        return settled

    async def _deliver_row(self, row: Row[Any]) -> str | None:
        """Deliver one outbox row; None when settled, else why not (kept on the row, retried
        with backoff). A row this release cannot read waits for one that can, never lost."""
        cls = event_class(row.event_type, row.event_version)
        if cls is None:
            _log.error("unknown event type; kept for a later release", event_type=row.event_type)
            return f"unknown event type {row.event_type} v{row.event_version}"
        try:
            # The trace context rides beside the event in its outbox row, not in the contract.
            payload = dict(row.payload)
            traceparent = payload.pop(TRACEPARENT, None)
            done = await self._bus.deliver(cls.model_validate(payload), traceparent=traceparent)
        except Exception as exc:
            _log.exception("event delivery failed", event_type=row.event_type)
            return f"{type(exc).__name__}: {exc}"
        return None if done else "some handlers have not processed the event yet"
