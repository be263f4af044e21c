"""The core container: app-lifetime infrastructure every module may depend on.

dependency-injector has no request scope, so only process-lifetime objects live here; the
per-use-case transaction is opened by the services through their `UnitOfWork`.
"""

from __future__ import annotations

from dependency_injector import containers, providers
from redis.asyncio import Redis
from sqlalchemy import Table

from app.core.audit import AuditTrail
from app.core.cache import ResponseCache
from app.core.config import Settings
from app.core.db import Databases
from app.core.events.bus import EventBus
from app.core.events.delivery import OutboxSignal
from app.core.events.outbox import UnitOfWork
from app.core.jobs import JobQueue
from app.core.mail import SmtpMailer
from app.core.privacy import PersonalDataRegistry
from app.core.security.keys import VerificationKeys
from app.core.security.passwords import PasswordHasher
from app.core.security.revocation import RevocationMirror, TokenRevocations
from app.core.security.tokens import TokenService


def create_redis(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(
        settings.require_redis_url(),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )
    return client


def unit_of_work(
    core: providers.DependenciesContainer, outbox: Table, inbox: Table
) -> providers.Singleton[UnitOfWork]:
    """A module's unit of work: its own database login, its own outbox and inbox, and the core's
    job queue and the relay's wake-up for what happens after commit."""
    return providers.Singleton(
        UnitOfWork,
        database=core.databases.provided.of.call(outbox.schema),
        outbox=outbox,
        inbox=inbox,
        jobs=core.jobs,
        on_events_committed=core.outbox_signal.provided.notify,
    )


class CoreContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    databases = providers.Singleton(Databases, settings=settings)
    redis = providers.Singleton(create_redis, settings=settings)
    cache = providers.Singleton(ResponseCache, settings=settings)
    jobs = providers.Singleton(JobQueue, settings=settings)
    bus = providers.Singleton(EventBus, max_attempts=settings.provided.event_max_attempts)
    outbox_signal = providers.Singleton(OutboxSignal)
    # The users module's own keys where it is hosted, else its published ones (JWKS): the
    # composition root provides them.
    verification_keys: providers.Dependency[VerificationKeys] = providers.Dependency()
    tokens = providers.Singleton(TokenService, settings=settings, keys=verification_keys)
    passwords = providers.Singleton(PasswordHasher)
    mailer = providers.Singleton(SmtpMailer, settings=settings)
    # The users module's audit table, or its HTTP client where users is served elsewhere: the
    # composition root provides it.
    audit: providers.Dependency[AuditTrail] = providers.Dependency()
    personal_data = providers.Singleton(PersonalDataRegistry)
    revocation_mirror = providers.Singleton(
        RevocationMirror,
        redis=redis,
        heartbeat_s=settings.provided.revocation_heartbeat_s,
        timeout_s=settings.provided.redis_timeout_s,
    )
    revocations = providers.Singleton(
        TokenRevocations,
        redis=redis,
        mirror=revocation_mirror,
        access_ttl_s=settings.provided.access_token_ttl_s,
    )
