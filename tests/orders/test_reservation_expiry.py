"""Orders when the catalog's reservation expires under them: an order still awaiting payment is
cancelled (any hold released), and a payment that lands after the expiry ends with the order
confirmed on stock taken again, or refunded when that stock is gone. No paid order is lost and
stock always adds up."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from arq import create_pool
from arq.jobs import Job, JobStatus
from fastapi import FastAPI
from sqlalchemy import text

from app.core.config import Settings
from app.core.jobs import redis_settings
from app.modules.catalog.service import ReservationExpiry, StockService
from app.modules.orders.service import OrderService, PaymentSaga
from app.runtime import Runtime
from tests.conftest import TestUser, eventually, running_worker
from tests.databases import operator_database
from tests.helpers import (
    ORDERS,
    create_product,
    held_or_sold,
    place_ok,
    read_order,
    settled,
    stock_of,
)


@pytest.fixture
def worker() -> None:
    """No worker beside the API here (it would take the payment at once): each test starts
    one when its story needs it."""


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def expire_reservations(app: FastAPI) -> int:
    """The reservations are a day old (past RESERVATION_TTL_S) and the catalog's cron runs."""
    runtime = runtime_of(app)
    async with operator_database(runtime).session() as session:
        await session.execute(
            text("UPDATE catalog.reservations SET created_at = now() - interval '1 day'")
        )
    expiry: ReservationExpiry = runtime.module("catalog").container.expiry()
    return await expiry.expire_overdue()


async def reservation_status(app: FastAPI, order_id: str) -> str | None:
    async with operator_database(runtime_of(app)).session() as session:
        status: str | None = await session.scalar(
            text("SELECT status FROM catalog.reservations WHERE order_id = :id"), {"id": order_id}
        )
    return status


async def money_asked_for(app: FastAPI, order_id: str) -> tuple[Any, Any]:
    async with operator_database(runtime_of(app)).session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT payment_id, authorisation_requested_at FROM orders.orders "
                    "WHERE id = :id"
                ),
                {"id": order_id},
            )
        ).one()
    return row.payment_id, row.authorisation_requested_at


def causes(order: dict[str, Any]) -> list[tuple[str, str]]:
    return [(change["status"], change["cause"]) for change in order["history"]]


async def becomes(
    client: httpx.AsyncClient, user: TestUser, order_id: str, status: str
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def reached() -> bool:
        latest.update(await read_order(client, user, order_id))
        return latest["status"] == status

    await eventually(reached, timeout_s=20)
    return latest


async def payment_job_done(settings: Settings, order_id: str) -> None:
    pool = await create_pool(redis_settings(settings))
    job = Job(f"take-payment:{order_id}", pool)

    async def gone() -> bool:  # payment jobs keep no result: done is not found
        return await job.status() in (JobStatus.complete, JobStatus.not_found)

    try:
        await eventually(gone)
    finally:
        await pool.aclose()


async def awaiting_payment(
    client: httpx.AsyncClient, customer: TestUser, product_id: str, quantity: int
) -> str:
    """An order whose stock is reserved and whose payment job waits for a worker."""
    order = await place_ok(client, customer, (product_id, quantity))
    assert (await settled(client, customer, order["id"]))["status"] == "stock_reserved"
    order_id: str = order["id"]
    return order_id


async def test_an_order_awaiting_payment_is_cancelled_when_its_reservation_expires(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order_id = await awaiting_payment(client, customer, lamp["id"], 2)

    assert await expire_reservations(app) == 1

    order = await becomes(client, customer, order_id, "cancelled")
    assert causes(order) == [
        ("pending", "placed"),
        ("stock_reserved", "stock reserved"),
        ("cancelled", "reservation expired"),
    ]
    assert await reservation_status(app, order_id) == "expired"
    assert await stock_of(client, lamp["id"]) == 5
    # The payment job, run late, takes nothing: the order is cancelled.
    async with running_worker(settings):
        await payment_job_done(settings, order_id)
    assert (await read_order(client, customer, order_id))["status"] == "cancelled"
    assert await money_asked_for(app, order_id) == (None, None)


async def test_a_hold_requested_before_the_expiry_is_released(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order_id = await awaiting_payment(client, customer, lamp["id"], 2)
    # The payment job had asked the provider for a hold, and its answer was lost.
    async with operator_database(runtime_of(app)).session() as session:
        await session.execute(
            text("UPDATE orders.orders SET authorisation_requested_at = now() WHERE id = :id"),
            {"id": order_id},
        )

    await expire_reservations(app)

    async with running_worker(settings):
        order = await becomes(client, customer, order_id, "refunded")
    assert causes(order)[2:] == [
        ("cancelled", "reservation expired"),
        ("refunded", "payment refunded"),
    ]
    assert await stock_of(client, lamp["id"]) == 5


async def test_an_order_still_pending_is_cancelled_when_its_reservation_expires(
    app: FastAPI, client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    runtime = runtime_of(app)
    await runtime.stop_relay()  # the catalog's answer never reaches orders
    order = await place_ok(client, customer, (lamp["id"], 1))
    orders_module = runtime.module("orders")
    orders: OrderService = orders_module.container.orders()

    async with orders_module.uow.begin() as tx:  # StockReservationExpired, delivered
        await orders.reservation_expired(tx, UUID(order["id"]))

    assert causes(await read_order(client, customer, order["id"])) == [
        ("pending", "placed"),
        ("cancelled", "reservation expired"),
    ]


async def confirmed_after_expiry(
    app: FastAPI, client: httpx.AsyncClient, customer: TestUser, product_id: str, quantity: int
) -> str:
    """The race: the payment is captured while orders' events wait (the relay is stopped), and
    the catalog expires the reservation before `OrderConfirmed` reaches it."""
    order_id = await awaiting_payment(client, customer, product_id, quantity)
    runtime = runtime_of(app)
    await runtime.stop_relay()
    saga: PaymentSaga = runtime.module("orders").container.saga()
    assert await saga.take_payment(UUID(order_id)) == "confirmed"
    assert await expire_reservations(app) == 1
    return order_id


async def take_all_for_another_order(app: FastAPI, product_id: str, quantity: int) -> None:
    catalog = runtime_of(app).module("catalog")
    stock: StockService = catalog.container.stock()
    async with catalog.uow.begin() as tx:
        await stock.reserve_for_order(tx, uuid4(), [(UUID(product_id), quantity)])


async def test_a_payment_after_expiry_confirms_the_order_on_stock_taken_again(
    app: FastAPI, client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order_id = await confirmed_after_expiry(app, client, customer, lamp["id"], 2)
    assert await stock_of(client, lamp["id"]) == 5  # on sale again

    runtime_of(app).start_relay()

    async def committed() -> bool:
        return await reservation_status(app, order_id) == "committed"

    await eventually(committed)
    order = await read_order(client, customer, order_id)
    assert [status for status, _ in causes(order)] == [
        "pending",
        "stock_reserved",
        "paid",
        "confirmed",
    ]

    async def sold() -> bool:
        return await stock_of(client, lamp["id"]) == 3

    await eventually(sold)
    assert await held_or_sold(app, lamp["id"]) == 2


@pytest.mark.parametrize("customer_cancels_first", [False, True])
async def test_a_payment_after_expiry_is_refunded_when_the_stock_is_gone(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    staff: TestUser,
    customer: TestUser,
    customer_cancels_first: bool,
) -> None:
    lamp = await create_product(client, staff, stock=2)
    order_id = await confirmed_after_expiry(app, client, customer, lamp["id"], 2)
    await take_all_for_another_order(app, lamp["id"], 2)
    if customer_cancels_first:
        cancelled = await client.post(f"{ORDERS}/{order_id}/cancel", headers=customer.headers)
        assert cancelled.status_code == 200, cancelled.text

    runtime_of(app).start_relay()
    async with running_worker(settings):
        order = await becomes(client, customer, order_id, "refunded")

    cause = (
        "cancelled by the customer"
        if customer_cancels_first
        else "reservation expired: out_of_stock"
    )
    assert causes(order)[3:] == [
        ("confirmed", "payment captured"),
        ("cancelled", cause),
        ("refunded", "payment refunded"),
    ]
    assert await reservation_status(app, order_id) == "expired"
    # Both lamps are held by the other order; none was sold twice.
    assert await stock_of(client, lamp["id"]) == 0
    assert await held_or_sold(app, lamp["id"]) == 2
