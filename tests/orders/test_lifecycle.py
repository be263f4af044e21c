"""The life of an order through the HTTP API with the sandbox payment adapter and a real
worker: paid and confirmed, declined and compensated, cancelled and refunded, shipped."""

from __future__ import annotations

from uuid import uuid4

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory, eventually
from tests.databases import operator_database
from tests.helpers import (
    ORDERS,
    assert_problem,
    create_product,
    finished,
    place_ok,
    read_order,
    statuses,
    stock_of,
)


async def reservation(client: httpx.AsyncClient, order_id: str) -> str | None:
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with operator_database(runtime).session() as session:
        status: str | None = await session.scalar(
            text("SELECT status FROM catalog.reservations WHERE order_id = :id"), {"id": order_id}
        )
    return status


async def reservation_becomes(client: httpx.AsyncClient, order_id: str, status: str) -> None:
    async def reached() -> bool:
        return await reservation(client, order_id) == status

    await eventually(reached)


async def test_a_paid_order_is_confirmed_and_its_stock_committed(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    order = await finished(
        client, customer, (await place_ok(client, customer, (lamp["id"], 2)))["id"]
    )

    assert statuses(order) == ["pending", "stock_reserved", "paid", "confirmed"]
    await reservation_becomes(client, order["id"], "committed")
    assert await stock_of(client, lamp["id"]) == 3


async def test_a_declined_card_fails_the_payment_and_releases_the_stock(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    placed = await place_ok(
        client, customer, (lamp["id"], 2), payment_method="pm_card_chargeDeclined"
    )
    order = await finished(client, customer, placed["id"])

    assert [(c["status"], c["cause"]) for c in order["history"]] == [
        ("pending", "placed"),
        ("stock_reserved", "stock reserved"),
        ("payment_failed", "card_declined"),
    ]
    await reservation_becomes(client, order["id"], "released")
    assert await stock_of(client, lamp["id"]) == 5


async def test_an_unknown_payment_method_is_declined_too(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    placed = await place_ok(client, customer, (lamp["id"], 1), payment_method="pm_card_unknown")
    order = await finished(client, customer, placed["id"])

    assert order["status"] == "payment_failed"
    assert order["history"][-1]["cause"] == "unknown_payment_method"
    await reservation_becomes(client, order["id"], "released")


async def test_cancelling_a_confirmed_order_refunds_it_and_restores_the_stock(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 2))
    await finished(client, customer, placed["id"])
    await reservation_becomes(client, placed["id"], "committed")

    response = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"

    async def refunded() -> bool:
        return (await read_order(client, customer, placed["id"]))["status"] == "refunded"

    await eventually(refunded)
    order = await read_order(client, customer, placed["id"])
    assert statuses(order)[-2:] == ["cancelled", "refunded"]
    await reservation_becomes(client, placed["id"], "released")
    assert await stock_of(client, lamp["id"]) == 5


async def test_cancelling_an_unpaid_order_releases_its_stock_without_a_refund(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 2), payment_method="pm_card_slow")

    response = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)

    assert response.status_code == 200, response.text
    await reservation_becomes(client, placed["id"], "released")
    assert await stock_of(client, lamp["id"]) == 5
    assert (await read_order(client, customer, placed["id"]))["status"] in ("cancelled", "refunded")


async def test_someone_elses_order_cannot_be_cancelled(
    client: httpx.AsyncClient, make_user: UserFactory, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 1))
    await finished(client, customer, placed["id"])

    by_other = await client.post(
        f"{ORDERS}/{placed['id']}/cancel", headers=(await make_user(Role.CUSTOMER)).headers
    )
    unknown = await client.post(f"{ORDERS}/{uuid4()}/cancel", headers=customer.headers)

    assert_problem(by_other, 404, "order-not-found")
    assert_problem(unknown, 404, "order-not-found")
    assert (await read_order(client, customer, placed["id"]))["status"] == "confirmed"


async def test_staff_ship_a_confirmed_order_which_then_cannot_be_cancelled(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser, app: FastAPI
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 1))
    await finished(client, customer, placed["id"])

    shipped = await client.post(f"{ORDERS}/{placed['id']}/ship", headers=staff.headers)
    cancel = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)
    again = await client.post(f"{ORDERS}/{placed['id']}/ship", headers=staff.headers)

    assert shipped.status_code == 200, shipped.text
    assert statuses(shipped.json())[-1] == "shipped"
    body = assert_problem(cancel, 409, "illegal-transition")
    assert "'shipped'" in body["detail"]
    assert "'shipped'" in assert_problem(again, 409, "illegal-transition")["detail"]
    assert (await read_order(client, customer, placed["id"]))["status"] == "shipped"
    async with operator_database(app.state.runtime).session() as session:  # shipping is audited
        audited = await session.execute(
            text("SELECT actor_id, outcome FROM users.audit_log WHERE action = 'orders.ship'")
        )
        assert [(str(a), o) for a, o in audited] == [
            (staff.id, "success"),
            (staff.id, "failure"),
        ]


async def test_an_order_that_is_not_confirmed_cannot_ship(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(
        client, customer, (lamp["id"], 1), payment_method="pm_card_chargeDeclined"
    )
    await finished(client, customer, placed["id"])

    response = await client.post(f"{ORDERS}/{placed['id']}/ship", headers=staff.headers)

    body = assert_problem(response, 409, "illegal-transition")
    assert "'payment_failed'" in body["detail"]


async def test_customers_cannot_ship(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 1))
    await finished(client, customer, placed["id"])

    response = await client.post(f"{ORDERS}/{placed['id']}/ship", headers=customer.headers)
    anonymous = await client.post(f"{ORDERS}/{placed['id']}/ship")
    unknown = await client.post(f"{ORDERS}/{uuid4()}/ship", headers=staff.headers)

    assert_problem(response, 403, "forbidden")
    assert_problem(anonymous, 401, "unauthorized")
    assert_problem(unknown, 404, "order-not-found")
    assert (await read_order(client, customer, placed["id"]))["status"] == "confirmed"


async def test_a_cancelled_order_cannot_be_cancelled_again(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 9))  # more than the stock: rejected
    await finished(client, customer, placed["id"])

    response = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)

    body = assert_problem(response, 409, "illegal-transition")
    assert body["detail"] == "The order is 'rejected' and cannot become 'cancelled'"
