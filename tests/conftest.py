"""Real Postgres and Redis for every test: embedded by default, or TEST_DATABASE_URL /
TEST_REDIS_URL when given. The schema is built by the alembic migrations, never create_all;
each test starts from empty tables and an empty Redis database."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from arq import create_pool
from arq.jobs import JobDef
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.bootstrap import truncate_all
from app.core import migrations
from app.core.config import Settings
from app.core.db import asyncpg_url
from app.core.jobs import queue_name, redis_settings
from app.core.logging import configure_logging
from app.core.security.rbac import Role
from app.core.security.services import credential_digest
from app.main import create_app
from app.runtime import Runtime
from app.worker.workers import Workers
from tests.databases import close_operator_databases, module_login_settings, module_logins
from tests.mail import MailSink
from tests.settings import load_settings

TEST_DATABASE = "keystone_test"
# The credential the tests' own HTTP clients of the facades present (as the service "tests"),
# and the digest every app they build accepts.
TEST_SERVICE_TOKEN = "tests-only-service-credential-0123456789abcdef"
TEST_SERVICE_CALLERS = [("tests", credential_digest(TEST_SERVICE_TOKEN))]


class Servers:
    """Where the test databases live, and how to make another one."""

    def __init__(self, admin_url: str, redis_url: str) -> None:
        self.admin_url = admin_url
        self.redis_url = redis_url

    def database_url(self, name: str) -> str:
        url = make_url(asyncpg_url(self.admin_url)).set(database=name)
        return url.render_as_string(hide_password=False)

    async def recreate_database(self, name: str) -> str:
        engine = create_async_engine(asyncpg_url(self.admin_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        return self.database_url(name)

    async def migrated_database(self, name: str) -> str:
        """A fresh database with every module's schema at its head, made as `migrate` makes
        it: each module's owner role runs its migrations, its login may use its schema only."""
        url = await self.recreate_database(name)
        await migrations.migrate(url, module_logins(url))
        return url

    def redis_database(self, number: int) -> str:
        """The URL of another numbered database of the same Redis."""
        return f"{self.redis_url.rsplit('/', 1)[0]}/{number}"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    stops: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="keystone-test-") as scratch:
        if not database_url:
            from devtools.servers import start_postgres

            postgres = start_postgres(Path(scratch) / "postgres", delete_on_stop=True)
            stops.append(postgres.stop)
            database_url = postgres.url("postgres")
        if not redis_url:
            from devtools.servers import start_redis

            redis = start_redis(Path(scratch) / "redis", persist=False)
            stops.append(redis.stop)
            redis_url = redis.url
        try:
            yield Servers(database_url, redis_url)
        finally:
            for stop in reversed(stops):
                stop()


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    """`database_url` is the operator's; every module connects with its own login."""
    values: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        **module_login_settings(database_url),
        "redis_url": redis_url,
        "outbox_poll_interval_s": 0.2,
        "event_retry_base_s": 0,
        "db_pool_size": 5,
        "log_level": "WARNING",
        "log_json": True,
        # The suite logs in and registers far more often than a person: generous limits keep it
        # deterministic, while every request still goes through the limiter. Tests of the limits
        # themselves build an app with tight ones.
        "rate_limit_default": "100000/minute",
        "rate_limit_auth_ip": "100000/minute",
        "rate_limit_auth_account": "100000/minute",
        "service_token": TEST_SERVICE_TOKEN,
        "service_callers": TEST_SERVICE_CALLERS,
        **overrides,
    }
    return load_settings(**values)


@pytest.fixture(scope="session")
async def database_url(servers: Servers) -> AsyncIterator[str]:
    yield await servers.migrated_database(TEST_DATABASE)
    await close_operator_databases()


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[MailSink]:
    """The SMTP server the app's mailer talks to (a real one, on a free local port)."""
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mail(smtp_sink: MailSink) -> MailSink:
    """The sink, emptied for this test."""
    smtp_sink.received.clear()
    return smtp_sink


@pytest.fixture(scope="session")
def settings(servers: Servers, database_url: str, smtp_sink: MailSink) -> Settings:
    return make_settings(
        database_url, servers.redis_url, smtp_port=smtp_sink.port, smtp_security="none"
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every test that touches the shared app starts from empty tables and an empty Redis."""
    if "app" not in request.fixturenames:
        yield
        return
    application: FastAPI = request.getfixturevalue("app")
    runtime = application.state.runtime
    # A relay mid-delivery holds locks TRUNCATE would queue behind (and vice versa).
    await runtime.stop_relay()
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    runtime.core.cache().clear_local()
    runtime.start_relay()
    yield


# Fields no response may carry: credentials, their hashes, internal flags.
LEAKY_FIELDS = frozenset(
    {"password", "hashed_password", "secret", "salt", "is_active", "is_superuser"}
)


def leaked_fields(document: Any) -> set[str]:
    """Every key, at any depth of a JSON document, that names a secret or an internal flag."""
    if isinstance(document, dict):
        own = {key for key in document if key in LEAKY_FIELDS or key.endswith("_hash")}
        return own.union(*(leaked_fields(value) for value in document.values()))
    if isinstance(document, list):
        return set().union(*(leaked_fields(value) for value in document))
    return set()


def refuse_leaks(request: httpx.Request, response: httpx.Response) -> None:
    """Fails the request (and so the test) whose JSON body leaks a secret or internal field."""
    # The OpenAPI document describes request bodies too (a password field, the password flow);
    # test_openapi.py checks its response schemas.
    is_schema = request.url.path == "/openapi.json"
    if is_schema or "json" not in response.headers.get("content-type", ""):
        return
    leaked = leaked_fields(json.loads(response.content))
    assert not leaked, f"{request.method} {request.url.path} leaks {leaked}"


@pytest.fixture(scope="session", autouse=True)
def _every_response_is_checked_for_leaks() -> Iterator[None]:
    """Every response any test gets from an app in process (httpx.ASGITransport, whoever built
    the client) goes through `refuse_leaks`."""
    original = httpx.ASGITransport.handle_async_request

    async def checked(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
        response = await original(self, request)
        await response.aread()
        refuse_leaks(request, response)
        return response

    httpx.ASGITransport.handle_async_request = checked  # type: ignore[method-assign]
    yield
    httpx.ASGITransport.handle_async_request = original  # type: ignore[method-assign]


def http_client(
    app: FastAPI, *, peer: str = "127.0.0.1", base_url: str = "http://testserver"
) -> httpx.AsyncClient:
    """A client for the ASGI app, connecting from `peer`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(peer, 40_000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as http:
        yield http


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require_redis_url())
    yield client
    await client.aclose()


UserFactory = Callable[..., Awaitable["TestUser"]]


class TestUser:
    __test__ = False  # not a test class

    def __init__(self, user_id: str, email: str, password: str, token: str) -> None:
        self.id = user_id
        self.email = email
        self.password = password
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user(app: FastAPI, client: httpx.AsyncClient) -> UserFactory:
    """A registered account with the given role, logged in through the HTTP API. Its email is
    verified (the service's own way, as for the demo accounts) unless `verified=False`; the
    verification flow itself is tested through the API in tests/users/test_email_verification.py.
    """
    counter = iter(range(1_000_000))

    async def make(
        role: Role = Role.CUSTOMER, password: str = "correct-horse-battery", verified: bool = True
    ) -> TestUser:
        email = f"{role.value}{next(counter)}@example.com"
        accounts = app.state.runtime.module("users").container.accounts()
        user = await accounts.register(
            email, password, f"Test {role.value}", frozenset({role}), email_verified=verified
        )
        response = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return TestUser(str(user.id), email, password, response.json()["access_token"])

    return make


@pytest.fixture
async def staff(make_user: UserFactory) -> TestUser:
    """A logged-in staff member (catalog:write, orders:read_any, orders:ship)."""
    return await make_user(Role.STAFF)


@pytest.fixture
async def customer(make_user: UserFactory) -> TestUser:
    return await make_user(Role.CUSTOMER)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, interval_s: float = 0.05
) -> None:
    """Wait until `check()` holds: for effects of events, which arrive after the response."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


def clock_moved_on(seconds: float) -> time_machine.travel:
    """This process's clock `seconds` later, still ticking: for a wait about time passing
    (an expiry, a breaker's reset), which a fixed sleep would spend for real. Event-loop timers
    run on the monotonic clock, which it leaves alone."""
    return time_machine.travel(time.time() + seconds, tick=True)


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Workers]:
    """Real arq workers (one per module queue) of their own runtime, as a separate process
    would have, polling the test Redis until the block ends, then cancelled like a stopped
    process."""
    workers = Workers(settings, poll_delay_s=0.05)
    task = asyncio.create_task(workers.run())
    try:
        yield workers
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_worker_burst(settings: Settings, runtime: Runtime | None = None) -> None:
    """Every job queued for every module, by real arq workers, until their queues are empty."""
    await Workers(settings, runtime, burst=True, poll_delay_s=0.05).run()


async def queued_jobs(settings: Settings, module: str) -> list[JobDef]:
    """The jobs waiting in a module's queue."""
    pool = await create_pool(redis_settings(settings))
    try:
        return await pool.queued_jobs(queue_name=queue_name(module))
    finally:
        await pool.aclose()


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    configure_logging(
        make_settings(
            settings.require_database_url(),
            settings.require_redis_url(),
            log_level="INFO",
            log_json=True,
        )
    )
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
    configure_logging(settings)


def access_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("logger") == "keystone.access"]
