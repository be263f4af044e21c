"""Redis down or frozen during checkout. Checkout does not truly need Redis: the order and its
events are durable in Postgres, and the jobs Redis would have carried are re-driven by the crons
once it is back. So the API keeps answering 201 within its timeouts (never hanging), /readyz
says 503 naming Redis, and everything recovers by itself when Redis returns."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.worker import Worker

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.jobs import redis_settings
from app.core.security.rbac import Role
from app.worker import worker_settings
from tests.conftest import TestUser, UserFactory, eventually
from tests.faults.conftest import RedisProcess
from tests.helpers import create_product, place, read_order, stock_of

# A guard against hanging, far above the Redis timeouts; not a speed assertion.
NO_HANG_S = 30


@pytest.fixture
async def staff(make_user: UserFactory) -> TestUser:
    return await make_user(Role.STAFF)


@pytest.fixture
async def customer(make_user: UserFactory) -> TestUser:
    return await make_user(Role.CUSTOMER)


async def checkout(
    client: httpx.AsyncClient, customer: TestUser, product_id: str
) -> dict[str, Any]:
    response = await asyncio.wait_for(place(client, customer, (product_id, 1)), NO_HANG_S)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def run_worker_until(settings: Settings, done: Any) -> None:
    """A worker started after the outage, as a supervisor would restart it."""
    runtime = build_runtime(settings)
    pool = await create_pool(redis_settings(settings))
    worker = Worker(
        **worker_settings(settings, runtime), redis_pool=pool, poll_delay=0.05, handle_signals=False
    )
    task = asyncio.create_task(worker.main())
    try:
        await eventually(done, timeout_s=20)
    finally:
        jobs = [task, *worker.tasks.values()]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await pool.aclose()
        await runtime.stop()


@pytest.mark.parametrize("outage", ["killed", "frozen"])
async def test_checkout_survives_a_redis_outage_and_recovers_by_itself(
    client: httpx.AsyncClient,
    settings: Settings,
    fault_redis: RedisProcess,
    staff: TestUser,
    customer: TestUser,
    outage: str,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    fault_redis.kill() if outage == "killed" else fault_redis.freeze()

    during = await checkout(client, customer, lamp["id"])
    ready = await asyncio.wait_for(client.get("/readyz"), NO_HANG_S)

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("failed")
    assert ready.json()["checks"]["postgres"] == "ok"

    async def reserved() -> bool:  # the saga's event steps do not need Redis
        return (await read_order(client, customer, during["id"]))["status"] == "stock_reserved"

    await eventually(reserved)

    fault_redis.thaw() if outage == "frozen" else fault_redis.start()  # Redis is back

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(ready_again)
    after = await checkout(client, customer, lamp["id"])

    async def both_confirmed() -> bool:
        statuses = [
            (await read_order(client, customer, order["id"]))["status"] for order in (during, after)
        ]
        return statuses == ["confirmed", "confirmed"]

    await run_worker_until(settings, both_confirmed)  # the redrive cron re-sent the lost job
    assert await stock_of(client, lamp["id"]) == 3
