"""Subscriptions and idempotent delivery of one event to one handler.

Each handler runs in a transaction of the module that owns it, recording the event in that
module's inbox in the same transaction: a redelivered event is skipped, a failing handler is
retried until `max_attempts` and then left as a dead letter, without holding back other handlers.
A handler whose effect is harmless to repeat (dropping a cache entry) may instead run outside
any transaction with no inbox row (`RepeatableSubscription`). The handlers of one event run
concurrently.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy import Integer, case, func, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.core import tracing
from app.core.context import correlation_id_var
from app.core.events.base import IntegrationEvent
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger, working_on

_log = get_logger("keystone.events")

Handler = Callable[[Any, Transaction], Awaitable[None]]
RepeatableHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class DeadLetter:
    event_id: UUID
    handler: str
    event_type: str
    attempts: int
    last_error: str | None
    updated_at: datetime


async def dead_letters(uow: UnitOfWork) -> list[DeadLetter]:
    """Deliveries this module's handlers gave up on, oldest first, for an operator to act on."""
    inbox = uow.inbox
    query = (
        select(
            inbox.c.event_id,
            inbox.c.handler,
            inbox.c.event_type,
            inbox.c.attempts,
            inbox.c.last_error,
            inbox.c.updated_at,
        )
        .where(inbox.c.status == "dead")
        .order_by(inbox.c.updated_at)
    )
    async with uow.database.session() as session:
        return [DeadLetter(**row._asdict()) for row in await session.execute(query)]


@dataclass(frozen=True)
class EventBacklog:
    undelivered: int  # outbox rows the relay has not delivered yet
    oldest_age_s: float  # how long the oldest of them has waited (0 when there is none)
    dead_letters: int


async def event_backlog(uow: UnitOfWork) -> EventBacklog:
    """What this module still owes, since when, and what it gave up on, in one round trip
    (served by partial indexes)."""
    outbox, inbox = uow.outbox, uow.inbox
    pending = outbox.c.dispatched_at.is_(None)
    undelivered = select(func.count()).where(pending)
    oldest = select(
        func.coalesce(func.extract("epoch", func.now() - func.min(outbox.c.occurred_at)), 0)
    ).where(pending)
    dead = select(func.count()).where(inbox.c.status == "dead")
    query = select(undelivered.scalar_subquery(), oldest.scalar_subquery(), dead.scalar_subquery())
    async with uow.database.session() as session:
        row = (await session.execute(query)).one()
    return EventBacklog(
        undelivered=row[0], oldest_age_s=max(0.0, float(row[1])), dead_letters=row[2]
    )


@dataclass(frozen=True)
class Subscription:
    event: type[IntegrationEvent]
    name: str
    handle: Handler
    uow: UnitOfWork


@dataclass(frozen=True)
class RepeatableSubscription:
    """A handler whose effect is harmless to repeat, run with no transaction and no inbox row:
    an event costs it no database round trip. When it fails the event is delivered again
    later (the other handlers skip it through their inboxes) until it succeeds; there is no
    dead letter, since trying again costs nothing."""

    event: type[IntegrationEvent]
    name: str
    handle: RepeatableHandler


AnySubscription = Subscription | RepeatableSubscription


class EventBus:
    """The in-process `EventDelivery`: every subscriber of an event runs, concurrently, each in
    a transaction of its own module that records the event in that module's inbox."""

    def __init__(self, max_attempts: int) -> None:
        self._subscriptions: dict[type[IntegrationEvent], list[AnySubscription]] = defaultdict(list)
        self._max_attempts = max_attempts

    def subscribe(self, subscription: AnySubscription) -> None:
        taken = {s.name for s in self._subscriptions[subscription.event]}
        if subscription.name in taken:
            raise ValueError(f"handler name {subscription.name!r} is already subscribed")
        self._subscriptions[subscription.event].append(subscription)

    def subscriptions(self, event_type: type[IntegrationEvent]) -> list[AnySubscription]:
        return list(self._subscriptions.get(event_type, ()))

    async def deliver(self, event: IntegrationEvent, traceparent: str | None = None) -> bool:
        """Deliver to every subscriber; True when each has processed it or given up on it."""
        correlation_id = event.correlation_id or str(event.event_id)
        token = correlation_id_var.set(correlation_id)
        try:
            with (
                structlog.contextvars.bound_contextvars(
                    correlation_id=correlation_id, event_id=str(event.event_id)
                ),
                tracing.span(
                    f"deliver {event.event_type}",
                    traceparent=traceparent,
                    kind=SpanKind.CONSUMER,
                    attributes={"messaging.message.id": str(event.event_id)},
                ),
            ):
                subscriptions = self.subscriptions(type(event))
                settled = await asyncio.gather(
                    *(self._traced_delivery(s, event) for s in subscriptions)
                )
        finally:
            correlation_id_var.reset(token)
        return all(settled)

    async def _traced_delivery(self, sub: AnySubscription, event: IntegrationEvent) -> bool:
        with (
            tracing.span(f"handle {sub.name}", attributes={"keystone.handler": sub.name}),
            working_on(sub.name),
        ):
            if isinstance(sub, RepeatableSubscription):
                return await self._repeat(sub, event)
            return await self._deliver_to(sub, event)

    @staticmethod
    async def _repeat(sub: RepeatableSubscription, event: IntegrationEvent) -> bool:
        try:
            await sub.handle(event)
        except Exception as exc:
            _log.warning(
                "event handler failed, the event will be delivered again",
                handler=sub.name,
                event_type=event.event_type,
                event_id=str(event.event_id),
                exc_info=exc,
            )
            return False
        return True

    async def _deliver_to(self, sub: Subscription, event: IntegrationEvent) -> bool:
        try:
            async with sub.uow.begin() as tx:
                if not await self._claim(tx, sub, event):
                    return True  # processed or dead-lettered before
                await sub.handle(event, tx)
        except Exception as exc:
            # The handler's writes and its inbox row went with the rollback; the failure is
            # counted in a transaction of its own.
            return await self._record_failure(sub, event, exc)
        return True

    @staticmethod
    async def _claim(tx: Transaction, sub: Subscription, event: IntegrationEvent) -> bool:
        """One round trip: record (event, handler) as processed, or take the row of an earlier
        failed try; False when it was processed or dead-lettered already. The row stays locked
        until commit, so a second relay racing on it waits, then sees it processed."""
        inbox = sub.uow.inbox
        claim = (
            pg_insert(inbox)
            .values(
                event_id=event.event_id,
                handler=sub.name,
                event_type=event.event_type,
                status="processed",
            )
            .on_conflict_do_update(
                index_elements=[inbox.c.event_id, inbox.c.handler],
                set_={"status": "processed", "updated_at": func.now()},
                where=inbox.c.status == "failed",
            )
            .returning(inbox.c.event_id)
        )
        return (await tx.session.execute(claim)).first() is not None

    async def _record_failure(
        self, sub: Subscription, event: IntegrationEvent, exc: Exception
    ) -> bool:
        """Count the failed try; True when it was the last one allowed (a dead letter now)."""
        inbox = sub.uow.inbox
        error = f"{type(exc).__name__}: {exc}"[:2000]
        # Coerced: the container hands modules a copy of their table whose column types lost
        # their operator lookup (SQLAlchemy's memoised state does not survive the copy).
        attempts = type_coerce(inbox.c.attempts, Integer()) + 1
        record = (
            pg_insert(inbox)
            .values(
                event_id=event.event_id,
                handler=sub.name,
                event_type=event.event_type,
                status="dead" if self._max_attempts <= 1 else "failed",
                attempts=1,
                last_error=error,
            )
            .on_conflict_do_update(
                index_elements=[inbox.c.event_id, inbox.c.handler],
                set_={
                    "status": case((attempts >= self._max_attempts, "dead"), else_="failed"),
                    "attempts": attempts,
                    "last_error": error,
                    "updated_at": func.now(),
                },
                where=inbox.c.status == "failed",
            )
            .returning(inbox.c.status, inbox.c.attempts)
        )
        async with sub.uow.database.session() as session:
            row = (await session.execute(record)).first()
        if row is None:  # another relay settled it meanwhile
            return True
        dead = bool(row.status == "dead")
        log = _log.error if dead else _log.warning
        log(
            "event handler dead-lettered" if dead else "event handler failed, will retry",
            handler=sub.name,
            event_type=event.event_type,
            event_id=str(event.event_id),
            attempts=row.attempts,
            exc_info=exc,
        )
        return dead
