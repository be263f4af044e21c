"""GET /orders reads the order summaries (order_summaries), written with each order in the
same transaction: newest first, cursor pages, each caller their own orders, staff everyone's,
and never behind what the order itself says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory, eventually
from tests.databases import operator_database
from tests.helpers import ORDERS, assert_problem, create_product, finished, place_ok


async def list_all(
    client: httpx.AsyncClient, user: TestUser, query: str = ""
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_query = f"?limit=2{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(ORDERS + page_query, headers=user.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_customers_list_their_own_orders_newest_first_in_pages(
    client: httpx.AsyncClient, make_user: UserFactory, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=50, price="2.50")
    mine = [await place_ok(client, customer, (lamp["id"], n)) for n in (1, 2, 3, 4, 5)]
    other = await make_user(Role.CUSTOMER)
    theirs = await place_ok(client, other, (lamp["id"], 1))
    for order in mine:
        await finished(client, customer, order["id"])

    async def projected() -> bool:
        listed = await list_all(client, customer)
        return [o["status"] for o in listed] == ["confirmed"] * 5

    await eventually(projected)
    listed = await list_all(client, customer)

    assert [o["id"] for o in listed] == [o["id"] for o in reversed(mine)]
    assert listed[0] == {
        "id": mine[-1]["id"],
        "customer_id": customer.id,
        "status": "confirmed",
        "total": "12.50",
        "currency": "EUR",
        "item_count": 5,
        "placed_at": listed[0]["placed_at"],
        "updated_at": listed[0]["updated_at"],
    }
    assert theirs["id"] not in {o["id"] for o in listed}
    assert [o["id"] for o in await list_all(client, other)] == [theirs["id"]]


async def test_the_list_follows_every_status_change(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=1)
    declined = await place_ok(
        client, customer, (lamp["id"], 1), payment_method="pm_card_chargeDeclined"
    )
    await finished(client, customer, declined["id"])
    rejected = await place_ok(client, customer, (lamp["id"], 2))
    await finished(client, customer, rejected["id"])

    async def projected() -> bool:
        statuses = {o["id"]: o["status"] for o in await list_all(client, customer)}
        return statuses == {declined["id"]: "payment_failed", rejected["id"]: "rejected"}

    await eventually(projected)


async def test_staff_list_everyones_orders_with_filters(
    client: httpx.AsyncClient, make_user: UserFactory, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=50)
    other = await make_user(Role.CUSTOMER)
    ok = await place_ok(client, customer, (lamp["id"], 1))
    failed = await place_ok(client, other, (lamp["id"], 1), payment_method="pm_card_chargeDeclined")
    await finished(client, customer, ok["id"])
    await finished(client, other, failed["id"])

    async def projected() -> bool:  # the read model lags the orders: wait for both outcomes
        declined = await list_all(client, staff, "&scope=all&status=payment_failed")
        paid = await list_all(client, staff, "&scope=all&status=confirmed")
        return len(declined) == len(paid) == 1

    await eventually(projected)
    everyone = await list_all(client, staff, "&scope=all")
    by_customer = await list_all(client, staff, f"&customer_id={customer.id}")
    confirmed = await list_all(client, staff, "&scope=all&status=confirmed")
    own = await list_all(client, staff)

    assert [o["id"] for o in everyone] == [failed["id"], ok["id"]]
    assert [o["id"] for o in by_customer] == [ok["id"]]
    assert [o["id"] for o in confirmed] == [ok["id"]]
    assert own == []


@pytest.mark.parametrize(
    "query", ["?scope=all", "?customer_id=00000000-0000-0000-0000-000000000001"]
)
async def test_customers_cannot_list_other_peoples_orders(
    client: httpx.AsyncClient, customer: TestUser, query: str
) -> None:
    response = await client.get(ORDERS + query, headers=customer.headers)

    body = assert_problem(response, 403, "forbidden")
    assert "orders:read_any" in body["detail"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?cursor=not-a-cursor", 400, "invalid-cursor"),
        ("?cursor=eyJhIjoxfQ", 400, "invalid-cursor"),
        ("?limit=0", 422, "validation-error"),
        ("?limit=101", 422, "validation-error"),
        ("?status=lost", 422, "validation-error"),
        ("?scope=everyone", 422, "validation-error"),
        ("?customer_id=nope", 422, "validation-error"),
    ],
)
async def test_bad_list_parameters_are_refused(
    client: httpx.AsyncClient, staff: TestUser, query: str, status: int, code: str
) -> None:
    response = await client.get(ORDERS + query, headers=staff.headers)

    assert_problem(response, status, code)


async def test_anonymous_cannot_list_orders(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(ORDERS), 401, "unauthorized")


async def test_the_read_side_is_not_the_write_side(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    """The list is served from order_summaries alone: a row only there is listed."""
    lamp = await create_product(client, staff, stock=5)
    placed = await place_ok(client, customer, (lamp["id"], 1))
    final = await finished(client, customer, placed["id"])
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]

    async def projected() -> bool:  # the last change projected, so none can overwrite ours
        return [o["status"] for o in await list_all(client, customer)] == [final["status"]]

    await eventually(projected)
    async with operator_database(runtime).session() as session:
        await session.execute(text("UPDATE orders.order_summaries SET status = 'shipped'"))

    assert [o["status"] for o in await list_all(client, customer)] == ["shipped"]


async def test_the_list_shows_an_order_as_soon_as_its_write_has_answered(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    """No wait for events: the order list is written with the order, so what a checkout or a
    cancellation answered is what the next list shows."""
    lamp = await create_product(client, staff, stock=5, price="2.50")
    placed = await place_ok(client, customer, (lamp["id"], 2))
    [listed] = await list_all(client, customer)
    assert (listed["id"], listed["item_count"], listed["total"]) == (placed["id"], 2, "5.00")

    cancelled = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=customer.headers)
    assert cancelled.status_code == 200, cancelled.text
    [listed] = await list_all(client, customer)
    # The refund job may have moved it on already, never back.
    assert listed["status"] in ("cancelled", "refunded")
