"""Subscriptions and idempotent delivery of one event to one handler.

Each handler runs in a transaction of the module that owns it, recording the event in that
module's inbox in the same transaction: a redelivered event is skipped, a failing handler is
retried until `max_attempts` and then left as a dead letter, without holding back other handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.core import tracing
from app.core.context import correlation_id_var
from app.core.events.base import IntegrationEvent
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger

_log = get_logger("keystone.events")

Handler = Callable[[Any, Transaction], Awaitable[None]]


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
    dead_letters: int


async def event_backlog(uow: UnitOfWork) -> EventBacklog:
    """What this module still owes and what it gave up on, in one round trip (both counts are
    served by partial indexes)."""
    outbox, inbox = uow.outbox, uow.inbox
    undelivered = select(func.count()).where(outbox.c.dispatched_at.is_(None))
    dead = select(func.count()).where(inbox.c.status == "dead")
    async with uow.database.session() as session:
        row = (
            await session.execute(select(undelivered.scalar_subquery(), dead.scalar_subquery()))
        ).one()
    return EventBacklog(undelivered=row[0], dead_letters=row[1])


@dataclass(frozen=True)
class Subscription:
    event: type[IntegrationEvent]
    name: str
    handle: Handler
    uow: UnitOfWork


class EventBus:
    def __init__(self, max_attempts: int) -> None:
        self._subscriptions: dict[type[IntegrationEvent], list[Subscription]] = defaultdict(list)
        self._max_attempts = max_attempts
        self._wakeup = asyncio.Event()

    def subscribe(self, subscription: Subscription) -> None:
        taken = {s.name for s in self._subscriptions[subscription.event]}
        if subscription.name in taken:
            raise ValueError(f"handler name {subscription.name!r} is already subscribed")
        self._subscriptions[subscription.event].append(subscription)

    def subscriptions(self, event_type: type[IntegrationEvent]) -> list[Subscription]:
        return list(self._subscriptions.get(event_type, ()))

    def notify(self) -> None:
        """Called after a commit wrote events: the relay delivers them now, not at its next poll."""
        self._wakeup.set()

    async def wait_for_events(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)
        self._wakeup.clear()

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
                settled = [await self._traced_delivery(sub, event) for sub in subscriptions]
        finally:
            correlation_id_var.reset(token)
        return all(settled)

    async def _traced_delivery(self, sub: Subscription, event: IntegrationEvent) -> bool:
        with tracing.span(f"handle {sub.name}", attributes={"keystone.handler": sub.name}):
            return await self._deliver_to(sub, event)

    async def _deliver_to(self, sub: Subscription, event: IntegrationEvent) -> bool:
        inbox = sub.uow.inbox
        key = (inbox.c.event_id == event.event_id) & (inbox.c.handler == sub.name)
        async with sub.uow.begin() as tx:
            # Insert-then-lock serialises two relays racing on the same (event, handler).
            await tx.session.execute(
                pg_insert(inbox)
                .values(
                    event_id=event.event_id,
                    handler=sub.name,
                    event_type=event.event_type,
                    status="pending",
                )
                .on_conflict_do_nothing()
            )
            seen = (
                await tx.session.execute(
                    select(inbox.c.status, inbox.c.attempts).where(key).with_for_update()
                )
            ).one()
            if seen.status in ("processed", "dead"):
                return True
            try:
                async with tx.savepoint():
                    await sub.handle(event, tx)
            except Exception as exc:
                return await self._record_failure(tx, sub, event, seen.attempts + 1, exc)
            await tx.session.execute(
                update(inbox).where(key).values(status="processed", updated_at=func.now())
            )
            return True

    async def _record_failure(
        self,
        tx: Transaction,
        sub: Subscription,
        event: IntegrationEvent,
        attempts: int,
        exc: Exception,
    ) -> bool:
        inbox = sub.uow.inbox
        dead = attempts >= self._max_attempts
        await tx.session.execute(
            update(inbox)
            .where((inbox.c.event_id == event.event_id) & (inbox.c.handler == sub.name))
            .values(
                status="dead" if dead else "failed",
                attempts=attempts,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                updated_at=func.now(),
            )
        )
        log = _log.error if dead else _log.warning
        log(
            "event handler dead-lettered" if dead else "event handler failed, will retry",
            handler=sub.name,
            event_type=event.event_type,
            event_id=str(event.event_id),
            attempts=attempts,
            exc_info=exc,
        )
        return dead
