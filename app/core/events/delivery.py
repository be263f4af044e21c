"""The seam between the relay and a transport: what the relay hands each committed event to.

In one process the `EventBus` delivers it to the subscribers' handlers; in split mode the
`StreamPublisher` adds it to its module's Redis stream (app/core/events/streams.py).
"""

from __future__ import annotations

from typing import Protocol

from app.core.events.base import IntegrationEvent


class EventDelivery(Protocol):
    async def deliver(self, event: IntegrationEvent) -> bool:
        """True once the event is settled (handled, or safely handed on); False to be retried."""
        ...
