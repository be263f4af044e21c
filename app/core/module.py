"""What a module brings to the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dependency_injector.containers import DeclarativeContainer
from fastapi import APIRouter

from app.core.events.bus import AnySubscription
from app.core.events.outbox import UnitOfWork
from app.core.jobs import CronJob, Job
from app.core.metrics import ScrapedMetric
from app.core.privacy import PersonalDataSource
from app.core.security.services import INTERNAL_PREFIX

# Module routers carry the full prefix themselves, so a route's template (logged per request)
# is its public path, and an extracted module serves the very same URLs.
API_PREFIX = "/api/v1"
# What every internal endpoint may answer besides its own result (problem+json).
INTERNAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "The X-Service-Token credential is not one this service accepts"},
    422: {"description": "Invalid input (problem+json naming each field)"},
    503: {"description": "This service's database is unavailable for a moment (Retry-After)"},
}


def internal_prefix(module: str) -> str:
    """Where a module serves other processes: `/internal/<module>`, never routed by the
    gateway, and answering only callers with a service credential."""
    return f"{INTERNAL_PREFIX}{module}"


@dataclass(frozen=True)
class Module:
    """One bounded context, ready to mount: `create_app` and the worker read nothing else.

    `name` is also the module's Postgres schema and the name of its migration history.
    """

    name: str
    container: DeclarativeContainer
    router: APIRouter
    uow: UnitOfWork
    # `/internal/<name>/...`: what the module serves other processes (its facade over HTTP).
    internal_router: APIRouter | None = None
    subscriptions: Sequence[AnySubscription] = ()
    jobs: Sequence[Job] = ()
    cron_jobs: Sequence[CronJob] = field(default_factory=tuple)
    personal_data: PersonalDataSource | None = None
    # Closes what the module opened itself (an HTTP client to a third party), at process stop.
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()
    # Read when Prometheus scrapes the process hosting the module (app/core/metrics.py).
    metrics: Sequence[ScrapedMetric] = ()
