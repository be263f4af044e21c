"""Split mode for real: one `python -m app.cli serve` process per module, and the orders worker
(`python -m app.cli worker`, payments), on a database and a Redis database of their own, each
with its own service credential, reaching the others at 127.0.0.1 ports (what Kubernetes
Service DNS names are in production). Events travel between them over Redis Streams, tuned to
reclaim an unacknowledged entry after a second and dead-letter it after three deliveries. The
services reach Redis through a TCP proxy (`Split.broker`) that a test may cut: the broker down
for them, while the test itself still reads Redis directly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.bootstrap import Runtime, build_runtime, truncate_all
from app.core.config import ALL_MODULES, Settings
from app.core.security.ed25519 import new_signing_key, private_pem
from app.core.security.rbac import Role
from app.core.security.services import credential_digest, new_service_token
from app.devstack import free_port
from tests.conftest import Servers
from tests.databases import database_env
from tests.faults.conftest import ROOT, settings_on_own_database, wait_until_ready
from tests.faults.tcp_proxy import TcpProxyThread

PASSWORD = "correct-horse-battery"
# Three processes importing the app at once on a loaded 2-core machine take their time.
START_TIMEOUT_S = 180
# Which services each one accepts calls from: users is called by the catalog (audit) and orders
# (contacts, audit), the catalog by orders (snapshots), orders by users (data export).
CALLERS = {"users": ("catalog", "orders"), "catalog": ("orders",), "orders": ("users",)}
# Users signs with a key of its own; the catalog and orders services get none, and verify with
# the public keys users publishes (its JWKS).
SIGNING_KEY = new_signing_key()
# Every service serves /metrics behind this token (the event backlog per module).
METRICS_TOKEN = "split-tests-metrics-token-0123456789abcdef"


@dataclass
class Service:
    """One module's API process (with a port) or worker (without); it can be stopped, killed
    and started again, on the same port."""

    module: str
    port: int | None
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)
    _log_offset: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        role = ["serve", "--port", str(self.port)] if self.port else ["worker"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *role],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> None:
        assert self.process is not None
        if self.port:
            wait_until_ready(self.url, self.process, self.log, timeout_s=START_TIMEOUT_S)
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"workers started" not in self.log.read_bytes()[self._log_offset :]:
            assert self.process.poll() is None, f"the worker exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"the worker did not start:\n{self.log.read_text()}"
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no drain, no lifespan shutdown, whatever it had in hand left as it was."""
        self.stop(signal.SIGKILL)


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


def _environments(
    settings: Settings, ports: dict[str, int], redis_url: str
) -> dict[str, dict[str, str]]:
    tokens = {module: new_service_token() for module in ALL_MODULES}
    common = {
        **os.environ,
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        **database_env(settings),
        "REDIS_URL": redis_url,
        **{f"{m.upper()}_URL": f"http://127.0.0.1:{port}" for m, port in ports.items()},
        "PEER_BREAKER_RESET_S": "1",
        "JWKS_REFETCH_MIN_S": "1",
        # The gateway (tests/split/test_gateway.py) is on this machine.
        "TRUSTED_PROXIES": "127.0.0.1",
        "EVENT_STREAM_CLAIM_IDLE_MS": "1000",
        "EVENT_STREAM_MAX_DELIVERIES": "3",
        "EVENT_STREAM_TRIM_INTERVAL_S": "1",
        # A killed relay's claimed outbox rows are taken over after this.
        "OUTBOX_LEASE_S": "5",
        "METRICS_ENABLED": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        # Workers serve theirs on a port of their own each, whichever is free.
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": "0",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_AUTH_IP": "100000/minute",
        "RATE_LIMIT_AUTH_ACCOUNT": "100000/minute",
    }
    return {
        module: {
            **common,
            "APP_MODULES": module,
            "APP_NAME": f"keystone-{module}",  # its Postgres application_name
            **({"JWT_PRIVATE_KEY": private_pem(SIGNING_KEY)} if module == "users" else {}),
            "SERVICE_TOKEN": tokens[module],
            "SERVICE_CALLERS": ",".join(
                f"{caller}:{credential_digest(tokens[caller])}" for caller in CALLERS[module]
            ),
        }
        for module in ALL_MODULES
    }


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
    envs = _environments(split_settings, ports, _through(broker, redis_url.geturl()))
    services = {
        module: Service(module, ports[module], envs[module], logs / f"{module}.log")
        for module in ALL_MODULES
    }
    workers = {"orders": Service("orders", None, envs["orders"], logs / "orders-worker.log")}
    processes = [*services.values(), *workers.values()]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.ready()
        yield Split(services, runtime, broker, workers)
    finally:
        for process in processes:
            process.stop()
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


class Person:
    def __init__(self, email: str, token: str) -> None:
        self.email = email
        self.headers = {"Authorization": f"Bearer {token}"}


async def login(split: Split, email: str) -> Person:
    async with split.client("users") as users:
        response = await users.post(
            "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    return Person(email, response.json()["access_token"])


async def account(split: Split, email: str, role: Role) -> Person:
    """An account made through the users module (its email vouched for, as for the demo
    accounts), logged in at the users service."""
    accounts = split.runtime.module("users").container.accounts()
    await accounts.register(
        email, PASSWORD, email.split("@")[0].title(), frozenset({role}), email_verified=True
    )
    return await login(split, email)
