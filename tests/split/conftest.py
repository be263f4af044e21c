"""Split mode for real: one `python -m app.cli serve` process per module, and the orders worker
(`python -m app.cli worker`, payments), on a database and a Redis database of their own, each
with its own service credential (tests/topology.py). Events travel between them over Redis
Streams, tuned to reclaim an unacknowledged entry after a second and dead-letter it after three
deliveries. The services reach Redis through a TCP proxy (`Split.broker`) that a test may cut:
the broker down for them, while the test itself still reads Redis directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from app.bootstrap import build_runtime, truncate_all
from app.core.config import ALL_MODULES, Settings
from app.core.security.rbac import Role
from app.runtime import Runtime
from devtools.servers import free_port
from tests import topology
from tests.conftest import Servers
from tests.faults.conftest import settings_on_own_database
from tests.faults.tcp_proxy import TcpProxyThread
from tests.topology import Person, Service, running, split_environments

# Every service serves /metrics behind this token (the event backlog per module).
METRICS_TOKEN = "split-tests-metrics-token-0123456789abcdef"


@dataclass
class Split:
    services: dict[str, Service]
    runtime: Runtime
    # The services' way to Redis (the test's own runtime goes straight to it).
    broker: TcpProxyThread
    # Beside the services: the orders worker (payments, and a second consumer in orders' group).
    workers: dict[str, Service] = field(default_factory=dict)

    def client(self, module: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.services[module].url, timeout=20)


@pytest.fixture(scope="package")
async def split_settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_split", redis_db=11)


def _through(proxy: TcpProxyThread, redis_url: str) -> str:
    """`redis_url` with the proxy's address instead of the server's."""
    parts = urlsplit(redis_url)
    return parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@pytest.fixture(scope="package")
async def split(
    split_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Split]:
    runtime = build_runtime(split_settings)  # the test's own view of the database
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    logs = tmp_path_factory.mktemp("split")
    ports = {module: free_port() for module in ALL_MODULES}
    redis_url = urlsplit(split_settings.require_redis_url())
    assert redis_url.hostname, "the split tests need Redis over TCP"
    assert redis_url.port
    broker = TcpProxyThread(redis_url.hostname, redis_url.port)
    broker.start()
    extra = {
        "REDIS_URL": _through(broker, redis_url.geturl()),
        # A killed relay's claimed outbox rows are taken over after this.
        "OUTBOX_LEASE_S": "5",
        # A payment job lost to a broker outage (enqueued after commit while Redis was away) is
        # sent again by the redrive sweep once its order has waited this long: the safety net
        # the broker faults rely on, at test speed rather than production's minute.
        "PAYMENT_REDRIVE_AFTER_S": "5",
        "METRICS_ENABLED": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        # Workers serve theirs on a port of their own each, whichever is free.
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": "0",
    }
    envs = split_environments(split_settings, ports, extra)
    services = {
        module: Service(module, ports[module], envs[module], logs / f"{module}.log")
        for module in ALL_MODULES
    }
    workers = {"orders": Service("orders", None, envs["orders"], logs / "orders-worker.log")}
    try:
        with running([*services.values(), *workers.values()]):
            yield Split(services, runtime, broker, workers)
    finally:
        broker.close()
        await runtime.stop()


@pytest.fixture
def services(split: Split) -> dict[str, Service]:
    """Every test starts with every service and worker up, and the broker reachable, whatever
    the previous one did."""
    if not split.broker.up:
        split.broker.start()
    for process in [*split.services.values(), *split.workers.values()]:
        if not process.running:
            process.start()
            process.ready()
    return split.services


async def login(split: Split, email: str) -> Person:
    return await topology.login(split.services["users"].url, email)


async def account(split: Split, email: str, role: Role) -> Person:
    """An account made through the users module (its email vouched for, as for the demo
    accounts), logged in at the users service."""
    return await topology.account(split.runtime, split.services["users"].url, email, role)
