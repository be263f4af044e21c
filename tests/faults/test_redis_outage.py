"""Redis down or frozen during checkout. An authenticated request truly needs Redis: the
token deny-list (logout, disabled accounts) lives there, and trusting a token that may be
revoked is not an option. The in-process mirror of that list answers only while Redis keeps
confirming it, so once the outage is noticed (within 2 x REVOCATION_HEARTBEAT_S) checkout
answers a clear 503 problem+json within its timeouts (never hangs), /readyz says 503 naming
Redis, and everything recovers by itself: once Redis is back, the same request succeeds and the
order is paid and confirmed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.conftest import TestUser, eventually, running_worker
from tests.faults.conftest import RedisProcess
from tests.helpers import answers, assert_problem, create_product, place, read_order, stock_of

# A guard against hanging, far above the Redis timeouts; not a speed assertion.
NO_HANG_S = 30


async def run_worker_until(settings: Settings, done: Any) -> None:
    """A worker started after the outage, as a supervisor would restart it."""
    async with running_worker(settings):
        await eventually(done, timeout_s=20)


@pytest.mark.parametrize("outage", ["killed", "frozen"])
async def test_checkout_during_a_redis_outage_is_a_clear_503_and_recovers_by_itself(
    client: httpx.AsyncClient,
    settings: Settings,
    fault_redis: RedisProcess,
    staff: TestUser,
    customer: TestUser,
    outage: str,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    fault_redis.kill() if outage == "killed" else fault_redis.freeze()
    await eventually(lambda: answers(client, customer.headers, 503), timeout_s=NO_HANG_S)

    during = await asyncio.wait_for(place(client, customer, (lamp["id"], 1), key="k-1"), NO_HANG_S)
    ready = await asyncio.wait_for(client.get("/readyz"), NO_HANG_S)

    assert_problem(during, 503, "service-unavailable")
    assert int(during.headers["retry-after"]) >= 1
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("failed")
    assert ready.json()["checks"]["postgres"] == "ok"
    assert await stock_of(client, lamp["id"]) == 5  # nothing was taken for the refused order

    fault_redis.thaw() if outage == "frozen" else fault_redis.start()  # Redis is back

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(ready_again)
    retried = await asyncio.wait_for(place(client, customer, (lamp["id"], 1), key="k-1"), NO_HANG_S)
    assert retried.status_code == 201, retried.text
    order = retried.json()

    async def confirmed() -> bool:
        return (await read_order(client, customer, order["id"]))["status"] == "confirmed"

    await run_worker_until(settings, confirmed)

    # The worker's relay may be the one that handles the stock event: this app's own copy of the
    # product (read during the outage) then lives out CACHE_LOCAL_TTL_S, the documented bound.
    async def one_taken() -> bool:
        return await stock_of(client, lamp["id"]) == 4

    await eventually(one_taken, timeout_s=settings.cache_local_ttl_s + 5)

    async def sign_in_works() -> bool:  # the fail-closed login limit recovers too
        form = {"username": customer.email, "password": customer.password}
        return (await client.post("/api/v1/auth/login", data=form)).status_code == 200

    await eventually(sign_in_works)
