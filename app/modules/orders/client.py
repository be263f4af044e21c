"""orders' part of a data export over HTTP, for a users module in a process without orders
(app/core/peers.py has the timeouts, retries, breaker and headers)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import TypeAdapter

from app.core.peers import Peer

_EXPORT = TypeAdapter(dict[str, Any])


class PersonalDataClient:
    def __init__(self, peer: Peer) -> None:
        self._peer = peer

    async def export(self, user_id: UUID) -> dict[str, Any]:
        return await self._peer.get(f"/internal/orders/personal-data/{user_id}", into=_EXPORT)
