"""Keystone as deployed, for tests that talk to it from outside: `python -m app.cli serve` and
`python -m app.cli worker` as real processes on the settings' database and Redis, either one
process hosting every module (the monolith) or one per module (split), each then with its own
service credential, reaching the others at 127.0.0.1 ports (what Kubernetes Service DNS names
are in production) and exchanging events over Redis Streams, tuned to reclaim an
unacknowledged entry after a second and dead-letter it after three deliveries; and the nginx
gateway (deploy/gateway) in front of split services.

Used by tests/split (the services one by one) and tests/scenarios (the same user journeys on
both topologies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.core.config import ALL_MODULES, Settings
from app.core.security.ed25519 import new_signing_key, private_pem
from app.core.security.rbac import Role
from app.core.security.services import credential_digest, new_service_token
from app.runtime import Runtime
from devtools.gateway import Gateway, start_gateway
from devtools.servers import free_port
from tests.databases import database_env
from tests.faults.conftest import ROOT, wait_until_ready

PASSWORD = "correct-horse-battery"
# Several processes importing the app at once on a loaded 2-core machine take their time.
START_TIMEOUT_S = 180
# Which services each one accepts calls from: users is called by the catalog (audit) and orders
# (contacts, audit), the catalog by orders (snapshots), orders by users (data export).
CALLERS = {"users": ("catalog", "orders"), "catalog": ("orders",), "orders": ("users",)}
# Users signs with a key of its own; the catalog and orders services get none, and verify with
# the public keys users publishes (its JWKS).
SIGNING_KEY = new_signing_key()


@dataclass
class Service:
    """One API process (with a port) or worker (without), hosting `module` or, for `"all"`,
    every module; it can be stopped, killed and started again, on the same port."""

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
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no lifespan shutdown, whatever it had in hand left as it was."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.signal(sig)
        self.wait()

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self) -> None:
        """Until the process has exited; killed if it takes too long."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _common_environment(settings: Settings, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        **database_env(settings),
        "REDIS_URL": settings.require_redis_url(),
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_AUTH_IP": "100000/minute",
        "RATE_LIMIT_AUTH_ACCOUNT": "100000/minute",
        **(extra or {}),
    }


def monolith_environment(
    settings: Settings, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every module in the process (APP_MODULES unset), events delivered in process."""
    return {**_common_environment(settings, extra), "JWT_PRIVATE_KEY": private_pem(SIGNING_KEY)}


def split_environments(
    settings: Settings, ports: Mapping[str, int], extra: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Each module's service: that module alone, its peers at their ports, its own credential
    and the digests of those it accepts calls from, the signing key in users only."""
    tokens = {module: new_service_token() for module in ALL_MODULES}
    common = {
        **_common_environment(settings, extra),
        **{f"{m.upper()}_URL": f"http://127.0.0.1:{port}" for m, port in ports.items()},
        "PEER_BREAKER_RESET_S": "1",
        "JWKS_REFETCH_MIN_S": "1",
        # The gateway (`gateway_in_front`) is on this machine.
        "TRUSTED_PROXIES": "127.0.0.1",
        "EVENT_STREAM_CLAIM_IDLE_MS": "1000",
        "EVENT_STREAM_MAX_DELIVERIES": "3",
        "EVENT_STREAM_TRIM_INTERVAL_S": "1",
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


@contextmanager
def running(processes: list[Service]) -> Iterator[None]:
    """All of them started at once (their imports overlap), ready, and stopped at the end, at
    once too (each drains for its own grace period)."""
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.ready()
        yield
    finally:
        for process in processes:
            process.signal()
        for process in processes:
            process.wait()


@contextmanager
def gateway_in_front(
    nginx: str, services: Mapping[str, Service], directory: Path
) -> Iterator[Gateway]:
    """nginx rendered from deploy/gateway with each module's service as its upstream."""
    upstreams = {name: f"127.0.0.1:{service.port}" for name, service in services.items()}
    with (directory / "nginx.log").open("wb") as log:
        gateway = start_gateway(nginx, directory, free_port(), upstreams, log)
        try:
            yield gateway
        finally:
            gateway.stop()


class Person:
    def __init__(self, email: str, token: str) -> None:
        self.email = email
        self.headers = {"Authorization": f"Bearer {token}"}


async def login(users_url: str, email: str, password: str = PASSWORD) -> Person:
    async with httpx.AsyncClient(base_url=users_url, timeout=20) as users:
        response = await users.post(
            "/api/v1/auth/login", data={"username": email, "password": password}
        )
    assert response.status_code == 200, response.text
    return Person(email, response.json()["access_token"])


async def account(runtime: Runtime, users_url: str, email: str, role: Role) -> Person:
    """An account made through the users module (its email vouched for, as for the demo
    accounts), logged in at `users_url`."""
    accounts = runtime.module("users").container.accounts()
    await accounts.register(
        email, PASSWORD, email.split("@")[0].title(), frozenset({role}), email_verified=True
    )
    return await login(users_url, email)
