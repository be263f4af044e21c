"""A payment or refund job run again (arq is at-least-once; the redrive sweep re-sends) does
nothing the first run already did: it reads the order's state first, and what it does send
carries the same idempotency key."""

from __future__ import annotations

from uuid import UUID

import httpx
from arq.worker import Worker
from fastapi import FastAPI

from app.modules.orders.service import PaymentSaga
from tests.conftest import TestUser, eventually
from tests.fake_payment_provider import FakeProvider
from tests.helpers import ORDERS, create_product, finished, place_ok, read_order


def saga(app: FastAPI) -> PaymentSaga:
    service: PaymentSaga = app.state.runtime.module("orders").container.saga()
    return service


async def test_payment_and_refund_jobs_run_twice_charge_and_refund_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    worker: Worker,
    provider: FakeProvider,
    staff: TestUser,
    customer: TestUser,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order = await finished(
        client, customer, (await place_ok(client, customer, (lamp["id"], 1)))["id"]
    )
    calls = dict(provider.calls)

    assert await saga(app).take_payment(UUID(order["id"])) == "confirmed"
    assert provider.calls == calls  # nothing sent again

    await client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer.headers)

    async def refunded() -> bool:
        return (await read_order(client, customer, order["id"]))["status"] == "refunded"

    await eventually(refunded)
    again = await saga(app).refund(UUID(order["id"]))

    assert again == "not refunded: the order is refunded"
    assert provider.calls[f"{order['id']}:refund"] == 1
    assert provider.intents_per_reference == {order["id"]: 1}
    assert len((await read_order(client, customer, order["id"]))["history"]) == 6
