"""The composition root shared by the API and the worker: settings in, wired modules out.

This is the only place that knows every module. A module reaches another only through the
contract it is handed here (orders gets a `CatalogFacade` and a `UsersFacade`), never by
importing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from dependency_injector import providers
from sqlalchemy import text

from app.core.config import ALL_MODULES, Settings
from app.core.container import CoreContainer
from app.core.events.relay import EventRelay, OutboxSource
from app.core.health import NotReadyError, Readiness, ReadinessCheck
from app.core.logging import get_logger
from app.core.migrations import current_revision, head_revision
from app.core.module import Module
from app.modules.catalog import module as catalog
from app.modules.orders import module as orders
from app.modules.users import module as users

_log = get_logger("keystone.bootstrap")


@dataclass
class Runtime:
    settings: Settings
    core: CoreContainer
    modules: list[Module]
    relay: EventRelay
    readiness: Readiness
    _relay_task: asyncio.Task[None] | None = field(default=None, init=False)
    _mirror_task: asyncio.Task[None] | None = field(default=None, init=False)

    def module(self, name: str) -> Module:
        for module in self.modules:
            if module.name == name:
                return module
        raise LookupError(f"module {name!r} is not mounted here (APP_MODULES)")

    @property
    def relays_events(self) -> bool:
        """Only a process holding every module relays: a relay marks an event delivered once
        the subscribers it knows have it, so a partial process would swallow events meant for
        modules it does not mount. Split deployments need a broker (not built yet)."""
        return {m.name for m in self.modules} == set(ALL_MODULES)

    async def start(self, *, checks_tokens: bool = True) -> None:
        """`checks_tokens`: this process serves authenticated requests (the API, not the
        worker), so it mirrors the token deny-list when `REVOCATION_MIRROR` is on."""
        await self.core.cache().start()
        if checks_tokens and self.settings.revocation_mirror:
            self._mirror_task = asyncio.create_task(
                self.core.revocation_mirror().run(), name="revocation-mirror"
            )
        if self.relays_events:
            self.start_relay()
        else:
            _log.warning("partial process: integration events are not relayed here")
        _log.info("started", modules=[m.name for m in self.modules], env=self.settings.app_env)

    def start_relay(self) -> None:
        self.relay.prepare_start()
        self._relay_task = asyncio.create_task(self.relay.run_forever(), name="outbox-relay")

    async def stop_relay(self, grace_s: float = 10.0) -> None:
        """Let the relay finish the batch in hand (its deliveries are transactions), then stop."""
        task, self._relay_task = self._relay_task, None
        if task is None:
            return
        self.relay.stop()
        try:
            await asyncio.wait_for(task, grace_s)
        except TimeoutError:
            _log.warning("relay did not stop in time; cancelled", grace_s=grace_s)

    async def stop_mirror(self) -> None:
        """The mirror only reads: stopped wherever it is, it closes its subscription."""
        task, self._mirror_task = self._mirror_task, None
        if task is None:
            return
        self.core.revocation_mirror().stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop(self) -> None:
        await self.stop_mirror()
        await self.stop_relay()
        for module in self.modules:
            for close in module.on_stop:
                await close()
        await self.core.jobs().close()
        if self.settings.redis_url:  # commands like `migrate` run without Redis
            await self.core.redis().aclose()
            await self.core.cache().close()
        await self.core.database().dispose()
        _log.info("stopped")


def _build_modules(settings: Settings, core: CoreContainer) -> list[Module]:
    mounted = set(settings.app_modules)
    modules: list[Module] = []
    if "users" in mounted:
        modules.append(users.build(core))
        # Every module's sensitive actions go to the users module's audit table, through the
        # core port; without users mounted they are logged (core's default).
        core.audit.override(providers.Object(users.audit_trail(modules[-1])))
    if "catalog" in mounted:
        modules.append(catalog.build(core))
    if "orders" in mounted:
        missing = [name for name in ("catalog", "users") if name not in mounted]
        if missing:
            raise RuntimeError(
                f"APP_MODULES mounts orders without {' and '.join(missing)};"
                " orders needs catalog and users in process"
            )
        mounted_module = {module.name: module for module in modules}
        modules.append(
            orders.build(
                core,
                catalog=catalog.facade(mounted_module["catalog"]),
                users=users.facade(mounted_module["users"]),
            )
        )
    return modules


def _readiness(core: CoreContainer, modules: list[Module]) -> Readiness:
    async def postgres() -> None:
        await core.database().ping()

    async def redis() -> None:
        await core.redis().ping()

    heads = {module.name: head_revision(module.name) for module in modules}

    async def migrations() -> None:
        engine = core.database().engine
        behind = [
            name for name, head in heads.items() if await current_revision(engine, name) != head
        ]
        if behind:
            raise NotReadyError(f"not at migration head: {', '.join(behind)}")

    return Readiness(
        [
            ReadinessCheck("postgres", postgres),
            ReadinessCheck("redis", redis),
            ReadinessCheck("migrations", migrations),
        ]
    )


def build_runtime(settings: Settings) -> Runtime:
    core = CoreContainer(settings=settings)
    modules = _build_modules(settings, core)
    bus = core.bus()
    for module in modules:
        for subscription in module.subscriptions:
            bus.subscribe(subscription)
        if module.personal_data is not None:
            core.personal_data().register(module.name, module.personal_data)
    relay = EventRelay(
        bus,
        [OutboxSource(m.name, core.database(), m.uow.outbox) for m in modules],
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        retry_base_s=settings.event_retry_base_s,
    )
    return Runtime(settings, core, modules, relay, _readiness(core, modules))


async def truncate_all(runtime: Runtime) -> None:
    """Empty every table of every mounted module (the tests start each case from this)."""
    tables = [
        f'"{table.schema}"."{table.name}"'
        for module in runtime.modules
        for table in module.uow.outbox.metadata.sorted_tables
    ]
    async with runtime.core.database().session() as session:
        await session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
