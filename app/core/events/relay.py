"""The relay: hands committed outbox rows to an `EventDelivery` (the in-process bus, or in split
mode the Redis stream of their module), in short transactions.

A pass over one outbox claims a batch (one statement: `FOR UPDATE SKIP LOCKED`, then a lease,
`claimed_by`/`claimed_until`, committed at once), delivers it outside any relay transaction, and
marks it in one batched UPDATE. Several relays (every API process and worker) share the work:
a claimed row is skipped by the others until its lease runs out, so a crashed relay's rows are
taken over then. Rows with the same `ordering_key` (an order's events) are delivered one after
the other, in the order raised, and a row is not claimed while an earlier one of its key is
undelivered elsewhere; different keys are delivered concurrently.

It passes over every outbox at start (an event committed just before a crash) and at least every
`poll_interval_s` (retries whose backoff has passed, leases run out), and over the outboxes a
commit names whenever one wakes it (this process's own, or any process's through Postgres
NOTIFY, whose payload is the outbox's schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table

from app.core.db import Database
from app.core.events.base import event_class
from app.core.events.delivery import EventDelivery, OutboxSignal
from app.core.events.outbox import TRACEPARENT
from app.core.events.relay_statements import CLAIM, DELIVERED, RELEASE, RETRY
from app.core.logging import get_logger

_log = get_logger("keystone.relay")
MAX_BACKOFF_S = 300.0
NOTIFY_CHANNEL = "keystone_outbox"
LISTEN_RETRY_S = 5.0


@dataclass(frozen=True)
class OutboxSource:
    module: str
    database: Database
    outbox: Table

    def sql(self, statement: str) -> str:
        return statement.format(table=f'"{self.outbox.schema}"."{self.outbox.name}"')


@dataclass(frozen=True)
class ClaimedRow:
    event_id: UUID
    event_type: str
    event_version: int
    payload: dict[str, Any]
    attempts: int
    ordering_key: str | None
    occurred_at: datetime


@dataclass
class PassOutcome:
    """What became of a claimed batch: settled, to retry (with why), or not tried (behind a
    failed row of the same key)."""

    delivered: list[UUID] = field(default_factory=list)
    failed: list[tuple[ClaimedRow, str]] = field(default_factory=list)
    untried: list[UUID] = field(default_factory=list)


# Called with (module, seconds from occurred to delivered) for each delivered row.
LagObserver = Callable[[str, float], None]


def _json(payload: Any) -> dict[str, Any]:
    """A jsonb column as the driver hands it over: text, unless a codec decoded it already."""
    decoded: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
    return decoded


def relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EventRelay:
    def __init__(
        self,
        delivery: EventDelivery,
        sources: list[OutboxSource],
        signal: OutboxSignal,
        *,
        batch_size: int,
        poll_interval_s: float,
        retry_base_s: float,
        lease_s: float,
        concurrency: int,
        name: str | None = None,
    ) -> None:
        self._delivery = delivery
        self._sources = sources
        self._signal = signal
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retry_base_s = retry_base_s
        self._lease_s = lease_s
        self._slots = asyncio.Semaphore(concurrency)
        self.name = name or relay_name()
        self._stopping = False
        self.lag_observers: list[LagObserver] = []

    async def run_once(self) -> int:
        """One pass over every outbox, concurrently; returns how many rows were delivered. One
        outbox failing (its database, a bug) does not hold back the others."""
        return sum(await asyncio.gather(*(self._guarded_pass(s) for s in self._sources)))

    async def run_forever(self) -> None:
        """Relay until `stop()`: a batch in hand is finished first, never cut in the middle."""
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        try:
            self._signal.take()  # commits from now on wake the next wait
            due: set[str] | None = None  # every outbox: what a crash left behind
            last_full_pass = time.monotonic()
            while not self._stopping:
                if due is None:
                    last_full_pass = time.monotonic()
                await self._drain(self._due(due))
                if self._stopping:
                    break
                due = await self._signal.wait(self._poll_interval_s)
                if time.monotonic() - last_full_pass >= self._poll_interval_s:
                    due = None  # wake-ups never starve retries, expired leases or unblocked keys
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _drain(self, sources: list[OutboxSource]) -> None:
        """A pass over `sources`, then again over each one that yielded rows until it yields
        none (a full batch, or rows of a key that waited behind the ones just delivered). A
        commit meanwhile has named its outbox to the signal, for the next wake-up."""
        while sources and not self._stopping:
            counts = await asyncio.gather(*(self._guarded_pass(source) for source in sources))
            sources = [source for source, count in zip(sources, counts, strict=True) if count]

    def _due(self, schemas: set[str] | None) -> list[OutboxSource]:
        """The outboxes a wake-up named; every outbox for the poll (None)."""
        if schemas is None:
            return list(self._sources)
        return [source for source in self._sources if source.outbox.schema in schemas]

    def prepare_start(self) -> None:
        """Called before `run_forever` is scheduled, so a `stop()` right after is not lost."""
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._signal.wake()

    async def _guarded_pass(self, source: OutboxSource) -> int:
        try:
            return await self._pass(source)
        except Exception:
            _log.exception("outbox pass failed; retrying at next poll", module=source.module)
            return 0

    async def _pass(self, source: OutboxSource) -> int:
        rows = await self._claim(source)
        if not rows:
            return 0
        outcome = PassOutcome()
        by_key: dict[str | UUID, list[ClaimedRow]] = defaultdict(list)
        for row in rows:
            by_key[row.ordering_key or row.event_id].append(row)
        await asyncio.gather(*(self._deliver_in_order(group, outcome) for group in by_key.values()))
        await self._mark(source, outcome)
        self._observe_lag(source.module, rows, outcome)
        return len(outcome.delivered)

    async def _claim(self, source: OutboxSource) -> list[ClaimedRow]:
        # Claims and marks are single statements, each atomic on its own: run outside any
        # transaction on the driver's pool, one round trip instead of four (docs/performance.md,
        # item 22). A claim retried after a lost connection may leave the first attempt's rows
        # leased to this relay: they are taken again when the lease runs out, as after a crash.
        found = await source.database.fetch(
            source.sql(CLAIM), self._batch_size, self.name, float(self._lease_s)
        )
        rows = [ClaimedRow(**{**row, "payload": _json(row["payload"])}) for row in found]
        return sorted(rows, key=lambda row: (row.occurred_at, row.event_id))

    async def _deliver_in_order(self, group: Sequence[ClaimedRow], outcome: PassOutcome) -> None:
        """One key's rows, one after the other; after a failure the rest wait for its retry."""
        async with self._slots:
            for position, row in enumerate(group):
                problem = await self._deliver_row(row)
                if problem is None:
                    outcome.delivered.append(row.event_id)
                    continue
                outcome.failed.append((row, problem))
                outcome.untried.extend(later.event_id for later in group[position + 1 :])
                return

    async def _deliver_row(self, row: ClaimedRow) -> str | None:
        """None when settled, else why not (kept on the row, retried with backoff). A row this
        release cannot read waits for one that can, never lost."""
        cls = event_class(row.event_type, row.event_version)
        if cls is None:
            _log.error("unknown event type; kept for a later release", event_type=row.event_type)
            return f"unknown event type {row.event_type} v{row.event_version}"
        try:
            # The trace context rides beside the event in its outbox row, not in the contract.
            payload = dict(row.payload)
            traceparent = payload.pop(TRACEPARENT, None)
            done = await self._delivery.deliver(
                cls.model_validate(payload), traceparent=traceparent
            )
        except Exception as exc:
            _log.exception("event delivery failed", event_type=row.event_type)
            return f"{type(exc).__name__}: {exc}"
        return None if done else "some handlers have not processed the event yet"

    async def _mark(self, source: OutboxSource, outcome: PassOutcome) -> None:
        database = source.database
        if outcome.delivered:
            await database.fetch(source.sql(DELIVERED), outcome.delivered)
        if outcome.failed:
            await database.fetch(
                source.sql(RETRY),
                [row.event_id for row, _ in outcome.failed],
                [self._backoff_s(row.attempts) for row, _ in outcome.failed],
                [problem[:2000] for _, problem in outcome.failed],
            )
        if outcome.untried:
            await database.fetch(source.sql(RELEASE), outcome.untried)

    def _backoff_s(self, attempts: int) -> float:
        return min(self._retry_base_s * 2.0 ** min(attempts, 16), MAX_BACKOFF_S)

    def _observe_lag(self, module: str, rows: list[ClaimedRow], outcome: PassOutcome) -> None:
        if not self.lag_observers:
            return
        delivered, now = set(outcome.delivered), time.time()
        for row in rows:
            if row.event_id in delivered:
                for observe in self.lag_observers:
                    observe(module, max(0.0, now - row.occurred_at.timestamp()))

    async def _listen(self) -> None:
        """Wake on every process's commits (NOTIFY); the poll covers any gap while reconnecting."""
        databases = {id(source.database): source.database for source in self._sources}
        await asyncio.gather(*(self._listen_on(db) for db in databases.values()))

    async def _listen_on(self, database: Database) -> None:
        while not self._stopping:
            try:
                await database.listen(NOTIFY_CHANNEL, self._on_notify)
            except Exception as exc:
                _log.warning("outbox LISTEN lost; polling meanwhile", error=repr(exc)[:300])
            await asyncio.sleep(LISTEN_RETRY_S)

    def _on_notify(self, schema: str) -> None:
        self._signal.notify(schema)
