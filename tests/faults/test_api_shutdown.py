"""Graceful shutdown of the API (`python -m app.cli serve`, as deployed): on SIGTERM or SIGINT it
refuses new connections at once (a readiness probe fails from the signal on), lets the request in
flight finish within API_SHUTDOWN_GRACE_S, cuts off one that would take longer, closes its
Postgres pool and exits 0.

The request is held in flight by something real: the test locks the product's row in Postgres
(SELECT ... FOR UPDATE in an open transaction), so a staff stock update waits on that lock for
as long as the test keeps it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.core.config import Settings
from app.core.security.rbac import Role
from app.modules.catalog.schemas import ProductCreate
from app.runtime import Runtime
from tests.conftest import Servers, eventually
from tests.databases import database_env
from tests.faults.conftest import (
    API_START_TIMEOUT_S,
    emptied_runtime,
    serving_api,
    settings_on_own_database,
)

ROOT = Path(__file__).resolve().parents[2]
API_NAME = "keystone-api-under-shutdown"  # the API process's Postgres application_name
STAFF_PASSWORD = "counting-the-shelves-twice"
# The lifespan shutdown and the interpreter's own exit: 1-4 s on a busy two-core CI machine; the
# test holds its lock far longer than grace + margin.
EXIT_MARGIN_S = 6.0
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_api_shutdown", redis_db=9)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with emptied_runtime(settings) as runtime:
        yield runtime


@pytest.fixture
async def product_id(runtime: Runtime) -> UUID:
    product = (
        await runtime.module("catalog")
        .container.products()
        .create_product(
            ProductCreate(
                sku="SHELF-1", name="Lamp", price=Decimal("9.00"), currency="EUR", stock=5
            )
        )
    )
    return product.id


@pytest.fixture
async def staff_email(runtime: Runtime) -> str:
    email = "counter@example.com"
    accounts = runtime.module("users").container.accounts()
    await accounts.register(email, STAFF_PASSWORD, "Stock Counter", frozenset({Role.STAFF}))
    return email


@pytest.fixture
async def postgres(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The test's own connections: one holds the row lock, one watches pg_stat_activity."""
    engine = create_async_engine(settings.require_database_url())
    yield engine
    await engine.dispose()


@contextmanager
def serving(
    settings: Settings, grace_s: int, log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with serving_api(
        settings,
        log,
        APP_NAME=API_NAME,
        API_SHUTDOWN_GRACE_S=str(grace_s),
        # The lock wait is the request's work here: the statement timeout must not end it first.
        DB_STATEMENT_TIMEOUT_MS="120000",
        LOG_LEVEL="INFO",
    ) as served:
        yield served


async def _staff_headers(base: str, email: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base) as http:
        login = await http.post(
            "/api/v1/auth/login", data={"username": email, "password": STAFF_PASSWORD}
        )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _lock_row(lock: AsyncConnection, product_id: UUID) -> None:
    """Locks the product's row until `lock.rollback()`."""
    await lock.execute(
        text("SELECT id FROM catalog.products WHERE id = :id FOR UPDATE"), {"id": product_id}
    )


def _set_stock(
    base: str, headers: dict[str, str], product_id: UUID, on_hand: int
) -> asyncio.Task[httpx.Response]:
    async def put() -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            return await http.put(
                f"/api/v1/catalog/products/{product_id}/stock",
                json={"on_hand": on_hand},
                headers=headers,
            )

    return asyncio.create_task(put())


async def _api_connections(postgres: AsyncEngine, *, waiting_on_a_lock: bool = False) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
    if waiting_on_a_lock:
        query += " AND wait_event_type = 'Lock'"
    async with postgres.connect() as connection:
        return int((await connection.execute(text(query), {"name": API_NAME})).scalar_one())


async def _waits_on_the_lock(postgres: AsyncEngine) -> bool:
    return await _api_connections(postgres, waiting_on_a_lock=True) == 1


async def _refuses_connections(base: str) -> bool:
    host, port = base.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


async def _stock(postgres: AsyncEngine, product_id: UUID) -> int:
    async with postgres.connect() as connection:
        query = text("SELECT stock FROM catalog.products WHERE id = :id")
        return int((await connection.execute(query, {"id": product_id})).scalar_one())


async def _exit_code(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    return await asyncio.to_thread(process.wait, timeout_s)


@pytest.mark.parametrize("stop_signal", SIGNALS)
async def test_a_signal_closes_the_door_and_lets_the_request_in_flight_finish(
    settings: Settings,
    postgres: AsyncEngine,
    product_id: UUID,
    staff_email: str,
    tmp_path: Path,
    stop_signal: signal.Signals,
) -> None:
    log = tmp_path / "api.log"
    with serving(settings, grace_s=30, log=log) as (base, api):
        headers = await _staff_headers(base, staff_email)
        async with postgres.connect() as lock:
            await _lock_row(lock, product_id)
            in_flight = _set_stock(base, headers, product_id, on_hand=8)
            await eventually(lambda: _waits_on_the_lock(postgres))

            api.send_signal(stop_signal)
            await eventually(lambda: _refuses_connections(base), timeout_s=1)
            async with httpx.AsyncClient(base_url=base) as probe:
                with pytest.raises(httpx.ConnectError):  # what a readiness probe meets from now on
                    await probe.get("/readyz")
            assert not in_flight.done()
            assert api.poll() is None

            await lock.rollback()  # the request in flight gets its row
            response = await in_flight
        assert await _exit_code(api, timeout_s=30) == 0, log.read_text()

    assert response.status_code == 200, response.text
    assert response.json() == {
        "product_id": str(product_id),
        "on_hand": 8,
        "reserved": 0,
        "available": 8,
    }
    assert await _stock(postgres, product_id) == 8
    await eventually(lambda: _no_api_connections(postgres), timeout_s=2)


async def _no_api_connections(postgres: AsyncEngine) -> bool:
    return await _api_connections(postgres) == 0


@pytest.mark.parametrize("stop_signal", SIGNALS)
async def test_a_request_past_the_grace_period_does_not_keep_the_process_alive(
    settings: Settings,
    postgres: AsyncEngine,
    product_id: UUID,
    staff_email: str,
    tmp_path: Path,
    stop_signal: signal.Signals,
) -> None:
    grace_s = 2
    log = tmp_path / "api.log"
    with serving(settings, grace_s=grace_s, log=log) as (base, api):
        headers = await _staff_headers(base, staff_email)
        async with postgres.connect() as lock:
            await _lock_row(lock, product_id)
            in_flight = _set_stock(base, headers, product_id, on_hand=8)
            await eventually(lambda: _waits_on_the_lock(postgres))

            signalled = time.monotonic()
            api.send_signal(stop_signal)
            exit_code = await _exit_code(api, timeout_s=grace_s + 30)
            took_s = time.monotonic() - signalled
            assert exit_code == 0, log.read_text()
            assert grace_s <= took_s < grace_s + EXIT_MARGIN_S, log.read_text()
            # Still holding the lock: the cut-off request's connection is gone all the same.
            assert await _api_connections(postgres) == 0
            cut_off = await in_flight
            await lock.rollback()

    # uvicorn answers a cut-off request 500 and closes the connection; nothing it did is
    # committed, so the client may retry it on another instance.
    assert cut_off.status_code == 500
    assert cut_off.headers["connection"] == "close"
    assert await _stock(postgres, product_id) == 5


def test_serve_exits_non_zero_when_its_port_is_taken(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            **database_env(settings),
            "REDIS_URL": settings.require_redis_url(),
        }
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=API_START_TIMEOUT_S
        )
    assert result.returncode != 0
    assert "address already in use" in result.stdout + result.stderr


def _exchange(connection: socket.socket) -> bytes:
    """One request on an open connection: the whole answer, or b"" once the API closed it."""
    try:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = connection.recv(4096)
            if not chunk:
                return answer
            answer += chunk
        return answer
    except (BrokenPipeError, ConnectionResetError):
        return b""


async def test_idle_connections_stay_open_for_api_keep_alive_s(
    settings: Settings, tmp_path: Path
) -> None:
    # Behind a load balancer the API must not close an idle connection before the balancer
    # does (it would answer 502): API_KEEP_ALIVE_S decides, not uvicorn's 5 s default.
    with serving_api(settings, tmp_path / "api.log", API_KEEP_ALIVE_S="3") as (base, _):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            assert _exchange(connection).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(1.5)  # idle, but within API_KEEP_ALIVE_S
            assert _exchange(connection).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(4.5)  # idle past it: the API closed the connection
            assert _exchange(connection) == b""
