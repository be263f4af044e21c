"""Graceful shutdown of the worker (`python -m app.cli worker`, as deployed): on SIGTERM it
takes no new job, lets the running one finish within WORKER_SHUTDOWN_GRACE_S, and hands back
one that would take longer, which the next worker then completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import text

from app.core.config import Settings
from app.core.jobs import queue_name
from app.core.security.rbac import Principal, Role
from app.modules.catalog.schemas import ProductCreate
from app.modules.orders.service import Checkout
from app.runtime import Runtime
from tests.conftest import Servers, eventually
from tests.databases import database_env, operator_database
from tests.faults.conftest import emptied_runtime, settings_on_own_database

ROOT = Path(__file__).resolve().parents[2]
SLOW_PAYMENT_S = 3


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_shutdown", redis_db=7)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with emptied_runtime(settings) as runtime:
        yield runtime


async def order_paying_slowly(runtime: Runtime) -> UUID:
    product = (
        await runtime.module("catalog")
        .container.products()
        .create_product(
            ProductCreate(
                sku="SLOW-1", name="Clock", price=Decimal("7.00"), currency="EUR", stock=5
            )
        )
    )
    customer = await (
        runtime.module("users")
        .container.accounts()
        .register("slow@example.com", "correct-horse-battery", "Slow Payer", email_verified=True)
    )
    placed = (
        await runtime.module("orders")
        .container.orders()
        .place_order(
            Checkout(
                customer_id=customer.id,
                idempotency_key="slow",
                items=[(product.id, 1)],
                shipping_address={"name": "A", "line1": "B", "postal_code": "1", "city": "C"},
                payment_method="pm_card_slow",
            )
        )
    )
    while await runtime.relay.run_once():  # -> stock_reserved, payment job enqueued
        pass
    return placed.order.id


def start_worker(settings: Settings, grace_s: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **database_env(settings),
        "REDIS_URL": settings.require_redis_url(),
        "PAYMENT_SANDBOX_SLOW_S": str(SLOW_PAYMENT_S),
        "WORKER_SHUTDOWN_GRACE_S": str(grace_s),
        "LOG_LEVEL": "INFO",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def status_of(runtime: Runtime, order_id: UUID) -> str:
    reader = Principal(UUID(int=1), frozenset({Role.STAFF}))
    order = await runtime.module("orders").container.orders().get_order(order_id, reader)
    return order.status


async def payment_running(runtime: Runtime, order_id: UUID) -> bool:
    return bool(await runtime.core.redis().exists(f"arq:in-progress:take-payment:{order_id}"))


async def payment_at_the_provider(runtime: Runtime, order_id: UUID) -> bool:
    """The job is past arq's own start (which a SIGTERM would cut short before our code runs)
    and waiting for the slow sandbox: the order asked for its authorisation."""
    async with operator_database(runtime).session() as session:
        asked = await session.scalar(
            text("SELECT authorisation_requested_at FROM orders.orders WHERE id = :id"),
            {"id": order_id},
        )
    return asked is not None and await payment_running(runtime, order_id)


async def test_sigterm_lets_the_running_payment_finish(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    order_id = await order_paying_slowly(runtime)
    worker = start_worker(settings, grace_s=SLOW_PAYMENT_S * 5, log=tmp_path / "worker.log")
    try:
        await eventually(lambda: payment_at_the_provider(runtime, order_id), timeout_s=120)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()
    finally:
        worker.kill()

    assert await status_of(runtime, order_id) == "confirmed"  # finished, not cut off


async def test_sigterm_hands_back_a_job_that_outlasts_the_grace_period(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    order_id = await order_paying_slowly(runtime)
    log = tmp_path / "worker.log"
    first = start_worker(settings, grace_s=0, log=log)
    try:
        await eventually(lambda: payment_at_the_provider(runtime, order_id), timeout_s=120)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, log.read_text()
    finally:
        first.kill()
    assert await status_of(runtime, order_id) == "stock_reserved"
    assert not await payment_running(runtime, order_id)
    queued = await runtime.core.redis().zscore(queue_name("orders"), f"take-payment:{order_id}")
    assert queued is not None, log.read_text()  # handed back, not lost

    second = start_worker(settings, grace_s=SLOW_PAYMENT_S * 5, log=log)
    try:

        async def confirmed() -> bool:
            return await status_of(runtime, order_id) == "confirmed"

        await eventually(confirmed, timeout_s=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
