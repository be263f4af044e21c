"""What a process runs once the composition root (`app.bootstrap`) has wired it: the hosted
modules, the outbox relay, the event consumers and the token mirror, started and stopped in
order."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from app.core.config import ALL_MODULES, Settings
from app.core.container import CoreContainer
from app.core.events.consumer_loops import ConsumerLoops
from app.core.events.relay import EventRelay
from app.core.health import Readiness
from app.core.logging import get_logger
from app.core.module import Module
from app.core.peers import PeerConnections

# The logger the start and stop lines have always been written under.
_log = get_logger("keystone.bootstrap")


@dataclass
class Runtime:
    settings: Settings
    core: CoreContainer
    modules: list[Module]
    relay: EventRelay
    readiness: Readiness
    peers: PeerConnections
    # The Redis Streams consumers of the hosted modules (None: events are delivered in process).
    consumers: ConsumerLoops | None = None
    _relay_task: asyncio.Task[None] | None = field(default=None, init=False)
    _mirror_task: asyncio.Task[None] | None = field(default=None, init=False)

    def module(self, name: str) -> Module:
        for module in self.modules:
            if module.name == name:
                return module
        raise LookupError(f"module {name!r} is not mounted here (APP_MODULES)")

    @property
    def relays_events(self) -> bool:
        """A relay delivering in process marks an event delivered once the subscribers it knows
        have it, so only a process holding every module may run one: a partial one would
        swallow events meant for modules it does not mount. Over Redis Streams every process
        relays its own modules' outboxes."""
        hosts_all = {m.name for m in self.modules} == set(ALL_MODULES)
        return self.consumers is not None or hosts_all

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
        if self.consumers is not None:
            self.consumers.start()
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
        if self.consumers is not None:  # first: their handlers write outboxes the relay reads
            await self.consumers.stop(grace_s=10.0)
            await self.consumers.close()
        await self.stop_relay()
        for module in self.modules:
            for close in module.on_stop:
                await close()
        await self.core.jobs().close()
        await self.peers.close()
        if self.settings.redis_url:  # commands like `migrate` run without Redis
            await self.core.redis().aclose()
            await self.core.cache().close()
        await self.core.databases().dispose()
        _log.info("stopped")
