"""Crash safety: a batch of concurrent checkouts while the API and the worker processes are
killed with SIGKILL and restarted. Clients retry with their Idempotency-Key, as they should.
Afterwards every order that got a 201 reaches a final state, nobody is charged twice (the fake
provider counts intents per order), and per product: stock = initial - committed, with no
reservation left dangling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import text

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.security.rbac import Role
from app.modules.catalog.schemas import ProductCreate
from app.runtime import Runtime
from devtools.servers import free_port
from tests.conftest import Servers, eventually, make_settings
from tests.databases import database_env, operator_database
from tests.fake_payment_provider import API_KEY, FakeProvider, running_provider
from tests.helpers import ORDERS, order_body

ROOT = Path(__file__).resolve().parents[2]
ORDERS_COUNT = 30
PRODUCTS = 3
INITIAL_STOCK = 15  # fewer than ordered: some orders are rejected, as in real life
FINAL = ("confirmed", "rejected", "payment_failed", "cancelled", "refunded")
ENV = {
    "APP_ENV": "test",
    "LOG_LEVEL": "WARNING",
    "PAYMENT_PROVIDER": "http",
    "PAYMENT_API_KEY": API_KEY,
    "PAYMENT_READ_TIMEOUT_S": "2",
    "PAYMENT_RETRY_WAIT_INITIAL_S": "0.05",
    "PAYMENT_JOB_RETRY_BASE_S": "0.5",
    "PAYMENT_REDRIVE_AFTER_S": "2",
    "ORDER_PENDING_TIMEOUT_S": "3600",
    "RESERVATION_TTL_S": "7200",
    "OUTBOX_POLL_INTERVAL_S": "0.5",
    "EVENT_RETRY_BASE_S": "0.2",
}


class Process:
    """One API or worker process, started like production starts it, killable at any moment."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self._args, self._env, self._log = args, env, log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, *self._args],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with running_provider() as fake:
        yield fake


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    url = await servers.migrated_database("keystone_crash")
    return make_settings(url, servers.redis_database(6))


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)  # for setting up and inspecting; its relay is not started
    await runtime.core.redis().flushdb()
    yield runtime
    await runtime.stop()


async def make_products(runtime: Runtime) -> list[str]:
    products = runtime.module("catalog").container.products()
    made = [
        await products.create_product(
            ProductCreate(
                sku=f"CRASH-{n}",
                name="Crate",
                price=Decimal("5.00"),
                currency="EUR",
                stock=INITIAL_STOCK,
            )
        )
        for n in range(PRODUCTS)
    ]
    return [str(p.id) for p in made]


class Client:
    """Customers who keep retrying through crashes with the same Idempotency-Key."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.failed_attempts = 0

    async def checkout(
        self, token: str, body: dict[str, object], start_after_s: float
    ) -> str | None:
        await asyncio.sleep(start_after_s)  # spread over the crashes
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid4())}
        for _ in range(300):
            try:
                response = await self.http.post(ORDERS, json=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 201:
                order_id: str = response.json()["id"]
                return order_id
            assert response is None or response.status_code >= 500, response.text
            self.failed_attempts += 1
            await asyncio.sleep(0.1)
        return None


async def until_ready(http: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return (await http.get("/readyz")).status_code == 200
        return False

    await eventually(ready, timeout_s=60, interval_s=0.2)


async def test_no_order_is_lost_or_charged_twice_when_processes_are_killed(
    settings: Settings, runtime: Runtime, provider: FakeProvider, tmp_path: Path
) -> None:
    product_ids = await make_products(runtime)
    shoppers = [
        await runtime.module("users")
        .container.accounts()
        .register(
            f"shopper{n}@example.com", "correct-horse-battery", "Shopper", email_verified=True
        )
        for n in range(3)
    ]
    port = free_port()
    env = {
        **os.environ,
        **ENV,
        **database_env(settings),
        "REDIS_URL": settings.require_redis_url(),
        "PAYMENT_API_URL": provider.url,
    }
    api = Process(
        ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path / "api.log",
    )
    worker = Process(["-m", "app.cli", "worker"], env, tmp_path / "worker.log")
    tokens = runtime.module("users").container.issuer()
    rng = random.Random(4)
    bodies = [order_body((rng.choice(product_ids), rng.randint(1, 2))) for _ in range(ORDERS_COUNT)]
    api.start()
    worker.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await until_ready(http)
            client = Client(http)
            checkouts = asyncio.gather(
                *(
                    client.checkout(
                        tokens.issue_access_token(
                            shoppers[n % len(shoppers)].id, frozenset({Role.CUSTOMER}), uuid4()
                        ),
                        body,
                        start_after_s=rng.uniform(0, 3),
                    )
                    for n, body in enumerate(bodies)
                )
            )

            for _ in range(3):  # crash both, at moments the test does not choose precisely
                await asyncio.sleep(0.7)
                worker.kill()
                worker.start()
                await asyncio.sleep(0.5)
                api.kill()
                api.start()
            await until_ready(http)
            order_ids = await checkouts
        assert all(order_ids), "a client never got its order placed"
        assert client.failed_attempts > 0  # the crashes really hit checkouts in flight

        async def all_final() -> bool:
            async with operator_database(runtime).session() as session:
                rows = await session.execute(
                    text("SELECT status FROM orders.orders WHERE id = ANY(:ids)"),
                    {"ids": [UUID(i) for i in order_ids if i]},
                )
                final = [status in FINAL for (status,) in rows]
                # ... and every event they raised has been delivered (the catalog has answered).
                undelivered = await session.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM orders.outbox WHERE dispatched_at IS NULL)"
                        " + (SELECT count(*) FROM catalog.outbox WHERE dispatched_at IS NULL)"
                    )
                )
                return len(final) == ORDERS_COUNT and all(final) and undelivered == 0

        await eventually(all_final, timeout_s=150, interval_s=0.5)
    finally:
        api.stop()
        worker.stop()

    async with operator_database(runtime).session() as session:
        orders_placed = await session.scalar(text("SELECT count(*) FROM orders.orders"))
        statuses = dict(
            (await session.execute(text("SELECT id::text, status FROM orders.orders"))).all()
        )
        committed = dict(
            (
                await session.execute(
                    text(
                        "SELECT l.product_id::text, sum(l.quantity)"
                        " FROM catalog.reservation_lines l JOIN catalog.reservations r"
                        " USING (order_id) WHERE r.status = 'committed' GROUP BY l.product_id"
                    )
                )
            ).all()
        )
        stock = dict(
            (await session.execute(text("SELECT id::text, stock FROM catalog.products"))).all()
        )
        dangling = await session.scalar(
            text("SELECT count(*) FROM catalog.reservations WHERE status = 'reserved'")
        )

    assert orders_placed == ORDERS_COUNT  # retries through crashes placed no extra order
    confirmed = [i for i, s in statuses.items() if s == "confirmed"]
    assert confirmed, statuses
    assert dangling == 0
    for product_id in product_ids:
        assert stock[product_id] == INITIAL_STOCK - committed.get(product_id, 0), product_id
    # Nobody charged twice: one payment intent per order at most; only confirmed ones captured.
    assert max(provider.intents_per_reference.values()) == 1
    assert sorted(provider.captured()) == sorted(confirmed)
