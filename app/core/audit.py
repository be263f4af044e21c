"""The audit port: who did what to what, from where, and how it ended.

Any module records sensitive actions through `AuditTrail.record`; the users module provides the
implementation (an append-only table) and the composition root hands it to the core container,
so a module never imports another to audit. Where users is not mounted, entries go to the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from fastapi import Request

from app.core.logging import get_logger

_log = get_logger("keystone.audit")


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


class AuditTrail(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...


class LogAuditTrail:
    """The fallback when no module stores audit entries: one log line each."""

    async def record(self, entry: AuditEntry) -> None:
        _log.info(
            "audit",
            action=entry.action,
            outcome=entry.outcome,
            actor_id=str(entry.actor_id) if entry.actor_id else None,
            target=entry.target,
            ip=entry.origin.ip,
            audit_request_id=entry.origin.request_id,
        )
