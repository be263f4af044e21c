"""The audit port: who did what to what, from where, and how it ended.

Any module records sensitive actions through `AuditTrail.record`; the users module provides the
implementation (an append-only table) and the composition root hands it to the core container,
so a module never imports another to audit. Where users is served by another process, the port
is an HTTP client of users' internal endpoint. Each entry carries its own id, so recording it
again (a retried call) stores it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID, uuid4

from fastapi import Request


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the client's address and the request id."""

    ip: str | None = None
    request_id: str | None = None


NO_ORIGIN = Origin()


def request_origin(request: Request) -> Origin:
    """A FastAPI dependency. The client address is the ASGI peer, which behind a proxy listed in
    TRUSTED_PROXIES is the client X-Forwarded-For names (app.core.http_security)."""
    return Origin(
        ip=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


@dataclass(frozen=True)
class AuditEntry:
    action: str
    outcome: Outcome
    actor_id: UUID | None = None
    target: str | None = None
    origin: Origin = NO_ORIGIN
    detail: Mapping[str, Any] = field(default_factory=dict)
    entry_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditTrail(Protocol):
    async def record(self, entry: AuditEntry) -> None:
        """Store the entry (once, however often it is recorded). Raises
        `app.core.peers.PeerUnavailableError` when the store is served elsewhere and cannot
        be reached, nor the entry queued for it."""
        ...
