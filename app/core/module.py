"""What a module brings to the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from dependency_injector.containers import DeclarativeContainer
from fastapi import APIRouter

from app.core.events.bus import Subscription
from app.core.events.outbox import UnitOfWork
from app.core.jobs import CronJob, Job
from app.core.privacy import PersonalDataSource

# Module routers carry the full prefix themselves, so a route's template (logged per request)
# is its public path, and an extracted module serves the very same URLs.
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Module:
    """One bounded context, ready to mount: `create_app` and the worker read nothing else.

    `name` is also the module's Postgres schema and the name of its migration history.
    """

    name: str
    container: DeclarativeContainer
    router: APIRouter
    uow: UnitOfWork
    subscriptions: Sequence[Subscription] = ()
    jobs: Sequence[Job] = ()
    cron_jobs: Sequence[CronJob] = field(default_factory=tuple)
    personal_data: PersonalDataSource | None = None
    # Closes what the module opened itself (an HTTP client to a third party), at process stop.
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()
