"""Split mode for real: one `python -m app.cli serve` process per module, on a database and a
Redis database of their own, each with its own service credential, reaching the others at
127.0.0.1 ports (what Kubernetes Service DNS names are in production). Events do not flow
between these processes yet (that needs the Redis Streams transport): the tests assert on what
the synchronous calls do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

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

PASSWORD = "correct-horse-battery"
# Three processes importing the app at once on a loaded 2-core machine take their time.
START_TIMEOUT_S = 180
# Which services each one accepts calls from: users is called by the catalog (audit) and orders
# (contacts, audit), the catalog by orders (snapshots), orders by users (data export).
CALLERS = {"users": ("catalog", "orders"), "catalog": ("orders",), "orders": ("users",)}
# Users signs with a key of its own; the catalog and orders services get none, and verify with
# the public keys users publishes (its JWKS).
SIGNING_KEY = new_signing_key()


@dataclass
class Service:
    """One module's API process; it can be stopped and started again on the same port."""

    module: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def ready(self) -> None:
        assert self.process is not None
        wait_until_ready(self.url, self.process, self.log, timeout_s=START_TIMEOUT_S)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Split:
    services: dict[str, Service]
    runtime: Runtime

    def client(self, module: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.services[module].url, timeout=20)


@pytest.fixture(scope="package")
async def split_settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_split", redis_db=11)


def _environments(settings: Settings, ports: dict[str, int]) -> dict[str, dict[str, str]]:
    tokens = {module: new_service_token() for module in ALL_MODULES}
    common = {
        **os.environ,
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        **database_env(settings),
        "REDIS_URL": settings.require_redis_url(),
        **{f"{m.upper()}_URL": f"http://127.0.0.1:{port}" for m, port in ports.items()},
        "PEER_BREAKER_RESET_S": "1",
        "JWKS_REFETCH_MIN_S": "1",
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
    envs = _environments(split_settings, ports)
    services = {
        module: Service(module, ports[module], envs[module], logs / f"{module}.log")
        for module in ALL_MODULES
    }
    for service in services.values():
        service.start()
    try:
        for service in services.values():
            service.ready()
        yield Split(services, runtime)
    finally:
        for service in services.values():
            service.stop()
        await runtime.stop()


@pytest.fixture
def services(split: Split) -> dict[str, Service]:
    """Every test starts with every service up, whatever the previous one did to them."""
    for service in split.services.values():
        if service.process is None or service.process.poll() is not None:
            service.start()
            service.ready()
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
