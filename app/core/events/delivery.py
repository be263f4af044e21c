"""The seam between the relay and whatever hands an event to its subscribers.

The relay reads the outbox and depends only on `EventDelivery`: in one process `EventBus` runs
every subscribed handler through its module's inbox; in split mode `StreamPublisher` adds it to
its module's Redis stream (app/core/events/streams.py).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from app.core.events.base import IntegrationEvent


class EventDelivery(Protocol):
    async def deliver(self, event: IntegrationEvent, traceparent: str | None = None) -> bool:
        """Hand `event` on; True once it is settled for good (every subscriber processed it or
        gave up on it, or a broker accepted it durably), False to have the relay retry it
        later with backoff. Raising counts as False. Called concurrently for events of
        different ordering keys, one at a time for events of the same key; may be called again
        for an event already handed on (at-least-once: consumers deduplicate by event id).
        `traceparent` is the W3C trace context of the span that wrote the event: its delivery
        continues that trace."""
        ...


class OutboxSignal:
    """Wakes the relay, naming the outboxes (by schema) that have new rows: set by this
    process's commits that wrote events, and by NOTIFYs, whose payload is the schema."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._woken: set[str] = set()

    def notify(self, schema: str) -> None:
        self._woken.add(schema)
        self._event.set()

    def wake(self) -> None:
        """Ends a wait with no outbox named: to stop."""
        self._event.set()

    def take(self) -> set[str]:
        """The outboxes named since the last take."""
        woken, self._woken = self._woken, set()
        self._event.clear()
        return woken

    async def wait(self, timeout_s: float) -> set[str] | None:
        """The outboxes named by the next wake-up, or None when `timeout_s` passed without one."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.take()
