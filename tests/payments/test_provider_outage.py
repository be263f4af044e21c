"""The payment saga over HTTP, and a provider outage: the breaker opens and calls fail fast
(visibly in the logs), the orders caught in it end `payment_failed` with their stock released,
and once the provider is back new orders are paid again without restarting anything."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI

from tests.conftest import TestUser, eventually
from tests.fake_payment_provider import DROP, FAIL, OK, FakeProvider
from tests.helpers import (
    ORDERS,
    create_product,
    finished,
    place_ok,
    read_order,
    statuses,
    stock_of,
)
from tests.payments.conftest import BREAKER_RESET_S, BREAKER_THRESHOLD


async def test_an_order_is_paid_through_the_provider(
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
) -> None:
    lamp = await create_product(client, staff, stock=5, price="19.99")

    order = await finished(
        client, customer, (await place_ok(client, customer, (lamp["id"], 2)))["id"]
    )

    assert statuses(order) == ["pending", "stock_reserved", "paid", "confirmed"]
    assert provider.captured() == [order["id"]]
    (intent,) = provider.intents.values()
    assert (intent["amount"], intent["currency"]) == (3998, "eur")
    assert provider.calls == {order["id"]: 1, f"{order['id']}:capture": 1}


async def test_a_lost_answer_is_retried_without_charging_twice(
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    provider.behave(DROP, DROP)  # the authorisation happens, its answer never arrives

    order = await finished(
        client, customer, (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    )

    assert order["status"] == "confirmed"
    assert provider.calls[order["id"]] == 3  # two attempts in the adapter, then the job's retry
    assert provider.intents_per_reference == {order["id"]: 1}
    assert provider.captured() == [order["id"]]


async def test_a_provider_outage_fails_orders_fast_releases_stock_and_recovers(
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff, stock=10)
    provider.behave(default=FAIL)

    during = [await place_ok(client, customer, (lamp["id"], 1)) for _ in range(3)]
    failed = [await finished(client, customer, o["id"], timeout_s=30) for o in during]

    assert [o["status"] for o in failed] == ["payment_failed"] * 3
    assert {o["history"][-1]["cause"] for o in failed} == {"payment provider unavailable"}
    assert provider.intents == {}
    # Each order's job tried 3 times with 2 attempts each; the open breaker kept most of
    # those 18 attempts from reaching the provider.
    assert BREAKER_THRESHOLD <= provider.total_calls < 18
    logs = [record.msg for record in caplog.records if isinstance(record.msg, dict)]
    events = [line["event"] for line in logs]
    assert "payment circuit changed state" in events
    assert "payment provider circuit is open; failing fast" in events
    gave_up = [line for line in logs if line["event"] == "job gave up"]
    assert {line["args"][0] for line in gave_up} == {o["id"] for o in during}

    async def released() -> bool:
        return await stock_of(client, lamp["id"]) == 10

    await eventually(released)

    provider.behave(default=OK)  # the provider is back; nothing is restarted
    await asyncio.sleep(BREAKER_RESET_S)
    after = await place_ok(client, customer, (lamp["id"], 1))

    assert (await finished(client, customer, after["id"]))["status"] == "confirmed"
    assert await stock_of(client, lamp["id"]) == 9


async def test_a_refund_that_gave_up_is_sent_again_once_the_provider_is_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 1))
    await finished(client, customer, placed["id"])
    provider.behave(default=FAIL)

    cancelled = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)
    assert cancelled.status_code == 200

    async def refund_gave_up() -> bool:
        return any(
            r.msg.get("event") == "refund not done: provider unavailable; the sweep will retry"
            for r in caplog.records
            if isinstance(r.msg, dict)
        )

    await eventually(refund_gave_up, timeout_s=30)
    assert (await read_order(client, customer, placed["id"]))["status"] == "cancelled"

    provider.behave(default=OK)  # back; the sweep (run here at once, not at its cron second)
    await asyncio.sleep(BREAKER_RESET_S)
    saga = app.state.runtime.module("orders").container.saga()
    assert await saga.redrive(now=datetime.now(UTC) + timedelta(hours=1)) == 1

    async def refunded() -> bool:
        return (await read_order(client, customer, placed["id"]))["status"] == "refunded"

    await eventually(refunded, timeout_s=30)
    assert provider.intents[next(iter(provider.intents))]["status"] == "refunded"


async def test_a_hold_whose_answers_were_all_lost_is_found_and_released(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
) -> None:
    """The provider authorised, but every answer was lost until the job gave up: the order
    fails, and the refund asks again with the same key, learns the hold and releases it."""
    lamp = await create_product(client, staff, stock=5)
    provider.behave(default=DROP)

    placed = await place_ok(client, customer, (lamp["id"], 1))
    failed = await finished(client, customer, placed["id"], timeout_s=30)

    assert failed["status"] == "payment_failed"
    assert provider.intents_per_reference == {placed["id"]: 1}  # held, though we never heard
    provider.behave(default=OK)
    await asyncio.sleep(BREAKER_RESET_S)
    saga = app.state.runtime.module("orders").container.saga()
    await saga.redrive(now=datetime.now(UTC) + timedelta(hours=1))

    async def refunded() -> bool:
        return (await read_order(client, customer, placed["id"]))["status"] == "refunded"

    await eventually(refunded, timeout_s=30)
    (intent,) = provider.intents.values()
    assert intent["status"] == "canceled"  # the hold is released, never captured
    assert provider.intents_per_reference == {placed["id"]: 1}  # asking again charged nothing
    assert await stock_of(client, lamp["id"]) == 5
