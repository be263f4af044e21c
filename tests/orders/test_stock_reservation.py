"""Stock under contention: concurrent orders never oversell, and a rejected multi-line order
takes nothing from any of its lines."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import UserFactory, eventually
from tests.helpers import FINAL, create_product, finished, place, read_order, statuses, stock_of


@pytest.mark.parametrize(("stock", "buyers"), [(1, 8), (3, 8)])
async def test_concurrent_orders_never_oversell(
    client: httpx.AsyncClient, make_user: UserFactory, stock: int, buyers: int
) -> None:
    staff = await make_user(Role.STAFF)
    lamp = await create_product(client, staff, stock=stock)
    customers = [await make_user(Role.CUSTOMER) for _ in range(buyers)]

    responses = await asyncio.gather(
        *(place(client, customer, (lamp["id"], 1)) for customer in customers)
    )

    assert [r.status_code for r in responses] == [201] * buyers, [r.text for r in responses]
    orders = [(customer, r.json()["id"]) for customer, r in zip(customers, responses, strict=True)]
    final: dict[str, dict[str, Any]] = {}

    async def all_answered() -> bool:
        for customer, order_id in orders:
            final[order_id] = await read_order(client, customer, order_id)
        return all(order["status"] in FINAL for order in final.values())

    await eventually(all_answered, timeout_s=20)

    outcome = Counter(order["status"] for order in final.values())
    assert outcome == {"confirmed": stock, "rejected": buyers - stock}
    assert await stock_of(client, lamp["id"]) == 0


async def test_multi_line_order_short_on_one_line_takes_nothing(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    customer = await make_user(Role.CUSTOMER)
    products = [await create_product(client, staff, stock=5) for _ in range(3)]
    # Stock is taken line by line in product-id order. Short only on the *last* of them, so
    # the first two lines have really been taken when the third fails and must be given back.
    *enough, short = sorted(products, key=lambda p: UUID(p["id"]))
    lines = [(p["id"], 5) for p in enough] + [(short["id"], 6)]

    response = await place(client, customer, *lines)

    assert response.status_code == 201, response.text
    rejected = await finished(client, customer, response.json()["id"])
    assert statuses(rejected) == ["pending", "rejected"]
    assert [await stock_of(client, p["id"]) for p in products] == [5, 5, 5]


async def test_a_rejected_order_leaves_stock_for_the_next_one(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    customer = await make_user(Role.CUSTOMER)
    desk = await create_product(client, staff, stock=5)
    lamp = await create_product(client, staff, stock=1)

    greedy = await place(client, customer, (desk["id"], 5), (lamp["id"], 2))
    assert statuses(await finished(client, customer, greedy.json()["id"])) == [
        "pending",
        "rejected",
    ]
    modest = await place(client, customer, (desk["id"], 5), (lamp["id"], 1))

    assert statuses(await finished(client, customer, modest.json()["id"])) == [
        "pending",
        "stock_reserved",
        "paid",
        "confirmed",
    ]
    assert await stock_of(client, desk["id"]) == 0
    assert await stock_of(client, lamp["id"]) == 0
