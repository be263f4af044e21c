"""Checkout is idempotent: the Idempotency-Key makes a retried POST /orders return the order it
already placed, never a second one."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.databases import operator_database
from tests.helpers import (
    ORDERS,
    assert_problem,
    create_product,
    finished,
    keyed,
    order_body,
    place,
    stock_of,
)


async def orders_in_database(client: httpx.AsyncClient) -> int:
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with operator_database(runtime).session() as session:
        count: int = await session.scalar(text("SELECT count(*) FROM orders.orders"))
    return count


async def test_a_repeat_with_the_same_key_and_body_returns_the_same_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    key = str(uuid4())

    first = await place(client, customer, (lamp["id"], 2), key=key)
    again = await place(client, customer, (lamp["id"], 2), key=key)

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    await finished(client, customer, first.json()["id"])
    assert await orders_in_database(client) == 1
    assert await stock_of(client, lamp["id"]) == 3  # taken once


async def test_a_repeat_after_the_order_moved_on_still_names_the_same_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    first = await place(client, customer, (lamp["id"], 1), key="order-2026-0001")
    await finished(client, customer, first.json()["id"])

    again = await place(client, customer, (lamp["id"], 1), key="order-2026-0001")

    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "confirmed"
    assert await stock_of(client, lamp["id"]) == 4


async def test_the_same_key_with_another_body_is_a_422(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    first = await place(client, customer, (lamp["id"], 1), key="k-1")

    other_quantity = await place(client, customer, (lamp["id"], 2), key="k-1")
    other_card = await place(
        client, customer, (lamp["id"], 1), key="k-1", payment_method="pm_card_chargeDeclined"
    )

    assert_problem(other_quantity, 422, "idempotency-key-reused")
    assert_problem(other_card, 422, "idempotency-key-reused")
    await finished(client, customer, first.json()["id"])
    assert await orders_in_database(client) == 1


async def test_concurrent_requests_with_one_key_place_one_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=50)

    responses = await asyncio.gather(
        *(place(client, customer, (lamp["id"], 1), key="double-click") for _ in range(8))
    )

    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
    await finished(client, customer, responses[0].json()["id"])
    assert await orders_in_database(client) == 1
    assert await stock_of(client, lamp["id"]) == 49


async def test_keys_are_scoped_to_the_customer(
    client: httpx.AsyncClient, make_user: UserFactory, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    other = await make_user(Role.CUSTOMER)

    mine = await place(client, customer, (lamp["id"], 1), key="shared-key")
    theirs = await place(client, other, (lamp["id"], 1), key="shared-key")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["customer_id"] == other.id
    await finished(client, customer, mine.json()["id"])
    await finished(client, other, theirs.json()["id"])


async def test_an_expired_key_places_a_new_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    first = await place(client, customer, (lamp["id"], 1), key="old-key")
    await finished(client, customer, first.json()["id"])
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with operator_database(runtime).session() as session:
        await session.execute(text("UPDATE orders.idempotency_keys SET expires_at = now()"))

    again = await place(client, customer, (lamp["id"], 1), key="old-key")

    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    await finished(client, customer, again.json()["id"])
    assert await stock_of(client, lamp["id"]) == 3


async def test_a_failed_checkout_does_not_burn_its_key(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    unknown = str(uuid4())

    refused = await place(client, customer, (unknown, 1), key="retry-me")
    fixed = await place(client, customer, (lamp["id"], 1), key="retry-me")

    assert_problem(refused, 422, "unknown-products")
    assert fixed.status_code == 201
    await finished(client, customer, fixed.json()["id"])


async def test_a_missing_key_is_a_400_and_places_nothing(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    response = await client.post(ORDERS, json=order_body((lamp["id"], 1)), headers=customer.headers)

    body = assert_problem(response, 400, "idempotency-key-required")
    assert "Idempotency-Key" in body["detail"]
    assert await orders_in_database(client) == 0


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "has space", "ünïcode".encode(), "semi;colon", 'quote"', "a/b"]
)
async def test_a_malformed_key_is_a_400(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser, key: str | bytes
) -> None:
    lamp = await create_product(client, staff, stock=5)
    headers: dict[str, str | bytes] = {**customer.headers, "Idempotency-Key": key}

    response = await client.post(ORDERS, json=order_body((lamp["id"], 1)), headers=headers)

    assert_problem(response, 400, "invalid-idempotency-key")
    assert await orders_in_database(client) == 0


async def test_the_longest_key_is_accepted(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    response = await client.post(
        ORDERS, json=order_body((lamp["id"], 1)), headers=keyed(customer, "k" * 255)
    )

    assert response.status_code == 201, response.text
    await finished(client, customer, response.json()["id"])
