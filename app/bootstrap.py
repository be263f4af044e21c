"""The composition root shared by the API and the worker: settings in, wired modules out.

This is the only place that knows every module. A module reaches another only through the
contract it is handed here (orders gets a `CatalogFacade` and a `UsersFacade`), never by
importing it: the module's own service when the other module is hosted in this process, its HTTP
client when it is served elsewhere (at `<MODULE>_URL`). Which one is decided from the settings
alone (docs/split-topology.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from dependency_injector import providers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings
from app.core.container import CoreContainer
from app.core.db import asyncpg_url
from app.core.events.bus import EventBus
from app.core.events.consumer import ConsumerSettings, StreamConsumer, consumer_name
from app.core.events.consumer_loops import ConsumerLoops, consumer_redis
from app.core.events.delivery import EventDelivery
from app.core.events.relay import EventRelay, OutboxSource
from app.core.events.streams import StreamPublisher, create_groups, streams_read_by
from app.core.health import NotReadyError, Readiness, ReadinessCheck
from app.core.migrations import current_revision, head_revision
from app.core.module import Module
from app.core.peers import PeerConnections
from app.core.security.keys import RemoteKeys, VerificationKeys
from app.modules.catalog import module as catalog
from app.modules.orders import module as orders
from app.modules.users import module as users
from app.runtime import Runtime
from app.settings import check_module_settings

__all__ = ["build_runtime", "create_consumer_groups", "truncate_all"]


def _build_modules(
    core: CoreContainer, hosting: Sequence[str], peers: PeerConnections
) -> list[Module]:
    """The hosted modules, each handed the others' contracts: in process or over HTTP."""
    built: dict[str, Module] = {}
    if "users" in hosting:
        built["users"] = users.build(core)
    if "catalog" in hosting:
        built["catalog"] = catalog.build(core)
    # Every module's sensitive actions go to the users module's audit table, through the core
    # port: the table itself here, or users' internal endpoint.
    if "users" in built:
        trail = users.audit_trail(built["users"])
    else:
        trail = users.remote_audit_trail(peers.peer("users"), core.jobs())
    core.audit.override(providers.Object(trail))
    _provide_verification_keys(core, built.get("users"), peers)
    if "orders" in hosting:
        built["orders"] = orders.build(
            core,
            catalog=(
                catalog.facade(built["catalog"])
                if "catalog" in built
                else catalog.remote_facade(peers.peer("catalog"))
            ),
            users=(
                users.facade(built["users"])
                if "users" in built
                else users.remote_facade(peers.peer("users"))
            ),
        )
    return list(built.values())


def _provide_verification_keys(
    core: CoreContainer, hosted_users: Module | None, peers: PeerConnections
) -> None:
    """Tokens verify with users' own keys where it is hosted, else with those it publishes,
    fetched when first needed (a worker never verifies a token)."""
    keys: providers.Provider[VerificationKeys]
    if hosted_users is not None:
        keys = providers.Object(hosted_users.container.signing_keys())
    else:
        keys = providers.Singleton(
            RemoteKeys,
            users=providers.Callable(peers.peer, "users"),
            refetch_min_s=core.settings.provided.jwks_refetch_min_s,
        )
    core.verification_keys.override(keys)


def _register_personal_data(
    core: CoreContainer, modules: list[Module], peers: PeerConnections
) -> None:
    """Every holder of personal data contributes to users' export: in process, or (orders)
    over HTTP when users is hosted here and orders is not."""
    registry = core.personal_data()
    for module in modules:
        if module.personal_data is not None:
            registry.register(module.name, module.personal_data)
    hosted = {module.name for module in modules}
    if "users" in hosted and "orders" not in hosted:
        registry.register("orders", orders.remote_personal_data(peers.peer("orders")))


def _readiness(
    core: CoreContainer, modules: list[Module], consumers: ConsumerLoops | None
) -> Readiness:
    async def postgres() -> None:
        for module in modules:  # each with its own login
            await module.uow.database.ping()

    async def redis() -> None:
        await core.redis().ping()

    heads = {module.name: head_revision(module.name) for module in modules}

    async def migrations() -> None:
        behind = [
            module.name
            for module in modules
            if await current_revision(module.uow.database.engine, module.name) != heads[module.name]
        ]
        if behind:
            raise NotReadyError(f"not at migration head: {', '.join(behind)}")

    checks = [
        ReadinessCheck("postgres", postgres),
        ReadinessCheck("redis", redis),
        ReadinessCheck("migrations", migrations),
    ]
    if consumers is not None:
        checks.append(ReadinessCheck("events", consumers.check))
    return Readiness(checks)


def _stream_consumers(settings: Settings, modules: list[Module]) -> ConsumerLoops:
    """One consumer per hosted module that subscribes to anything, each delivering to its own
    module's handlers only (its consumer group stands for that module alone)."""
    redis = consumer_redis(
        settings.require_redis_url(), settings.redis_timeout_s, settings.event_stream_block_ms
    )
    tuning = ConsumerSettings(
        block_ms=settings.event_stream_block_ms,
        batch_size=settings.event_stream_batch_size,
        claim_idle_ms=settings.event_stream_claim_idle_ms,
        max_deliveries=settings.event_stream_max_deliveries,
        trim_interval_s=settings.event_stream_trim_interval_s,
    )
    consumers = []
    for module in modules:
        if not module.subscriptions:
            continue
        handlers = EventBus(settings.event_max_attempts)
        for subscription in module.subscriptions:
            handlers.subscribe(subscription)
        consumers.append(
            StreamConsumer(
                redis,
                handlers,
                group=module.name,
                streams=streams_read_by(module.subscriptions),
                consumer=consumer_name(),
                settings=tuning,
            )
        )
    return ConsumerLoops(redis, consumers)


async def create_consumer_groups(runtime: Runtime) -> None:
    """The release step's part for Redis Streams (`python -m app.cli migrate`): every hosted
    module's consumer groups, at `0`, so nothing published before its first start is missed
    and no stream is trimmed past what it has not read."""
    if runtime.consumers is None:
        return
    await create_groups(
        runtime.core.redis(),
        {consumer.group: consumer.streams for consumer in runtime.consumers.consumers},
    )


def build_runtime(settings: Settings, *, hosting: Sequence[str] | None = None) -> Runtime:
    """The modules named by `hosting` (default APP_MODULES; the worker passes WORKER_MODULES),
    wired to each other and to those served elsewhere."""
    hosting = hosting or settings.app_modules
    check_module_settings(settings, hosting)
    core = CoreContainer(settings=settings)
    peers = PeerConnections(settings)
    modules = _build_modules(core, hosting, peers)
    _register_personal_data(core, modules, peers)
    bus = core.bus()
    consumers: ConsumerLoops | None = None
    delivery: EventDelivery = bus
    if settings.events_transport([m.name for m in modules]) == "redis-streams":
        consumers = _stream_consumers(settings, modules)
        delivery = StreamPublisher(core.redis())
    else:
        for module in modules:
            for subscription in module.subscriptions:
                bus.subscribe(subscription)
    relay = EventRelay(
        delivery,
        [OutboxSource(m.name, m.uow.database, m.uow.outbox) for m in modules],
        core.outbox_signal(),
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        retry_base_s=settings.event_retry_base_s,
        lease_s=settings.outbox_lease_s,
        concurrency=settings.outbox_concurrency,
    )
    readiness = _readiness(core, modules, consumers)
    return Runtime(settings, core, modules, relay, readiness, peers, consumers)


async def truncate_all(runtime: Runtime) -> None:
    """Empty every table of every mounted module (the tests start each case from this), as the
    operator (DATABASE_URL): the modules' own logins may not TRUNCATE."""
    tables = [
        f'"{table.schema}"."{table.name}"'
        for module in runtime.modules
        for table in module.uow.outbox.metadata.sorted_tables
    ]
    engine = create_async_engine(asyncpg_url(runtime.settings.require_database_url()))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
