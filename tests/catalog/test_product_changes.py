"""Changing products: PATCH, archive (DELETE), stock counts (PUT /stock), and the events each
write publishes."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI

from app.core.security.rbac import Role
from app.modules.catalog.contracts import CatalogFacade
from app.modules.catalog.service import StockService
from tests.conftest import UserFactory
from tests.helpers import (
    CATEGORIES,
    PRODUCTS,
    assert_problem,
    create_product,
    error_fields,
    get_product,
    outbox_events,
    place,
)


def catalog_facade(app: FastAPI) -> CatalogFacade:
    facade: CatalogFacade = app.state.runtime.module("catalog").container.products()
    return facade


async def reserve(app: FastAPI, order_id: UUID, product_id: str, quantity: int) -> None:
    catalog = app.state.runtime.module("catalog")
    stock: StockService = catalog.container.stock()
    async with catalog.uow.begin() as tx:
        await stock.reserve_for_order(tx, order_id, [(UUID(product_id), quantity)])


async def release(app: FastAPI, order_id: UUID) -> None:
    catalog = app.state.runtime.module("catalog")
    stock: StockService = catalog.container.stock()
    async with catalog.uow.begin() as tx:
        await stock.release_for_order(tx, order_id)


async def listed_ids(client: httpx.AsyncClient) -> list[str]:
    response = await client.get(PRODUCTS, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- PATCH ---------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk", price="10.00")

    response = await client.patch(
        f"{PRODUCTS}/{product['id']}",
        json={"name": "Oak desk", "price": "12.5"},
        headers=staff.headers,
    )

    assert response.status_code == 200, response.text
    expected = {**product, "name": "Oak desk", "price": "12.50"}
    assert response.json() == expected
    assert await get_product(client, product["id"]) == expected
    events = await outbox_events(app, "catalog.ProductUpdated")
    assert events[-1]["product_id"] == product["id"]
    assert events[-1]["changes"] == {"name": "Oak desk", "price": "12.50"}


async def test_patch_moves_a_product_between_categories_and_out(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    desks = (await client.post(CATEGORIES, json={"name": "Desks"}, headers=staff.headers)).json()
    product = await create_product(client, staff)
    url = f"{PRODUCTS}/{product['id']}"

    into = await client.patch(url, json={"category_id": desks["id"]}, headers=staff.headers)
    out = await client.patch(url, json={"category_id": None}, headers=staff.headers)

    assert into.json()["category_id"] == desks["id"]
    assert out.json()["category_id"] is None


async def test_patch_without_a_change_publishes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk")

    response = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"name": "Desk"}, headers=staff.headers
    )

    assert response.status_code == 200, response.text
    assert await outbox_events(app, "catalog.ProductUpdated") == []


async def test_patch_to_a_taken_sku_is_a_409(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    await create_product(client, staff, sku="TAKEN-1")
    product = await create_product(client, staff, sku="MINE-1")

    response = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"sku": "TAKEN-1"}, headers=staff.headers
    )

    assert_problem(response, 409, "sku-taken")
    assert (await get_product(client, product["id"]))["sku"] == "MINE-1"


async def test_patch_to_an_unknown_category_is_a_422(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)

    response = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"category_id": str(uuid4())}, headers=staff.headers
    )

    assert_problem(response, 422, "unknown-category")
    assert await get_product(client, product["id"]) == product


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"name": None}, "body.name"),
        ({"price": None}, "body.price"),
        ({"price": "0"}, "body.price"),
        ({"price": "1.234"}, "body.price"),
        ({"currency": "eur"}, "body.currency"),
        ({"sku": "bad sku"}, "body.sku"),
        ({"stock": 5}, "body.stock"),
        ({"name": "a\x00b"}, "body.name"),
        ({"description": "d" * 5_001}, "body.description"),
    ],
)
async def test_invalid_patch_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, make_user: UserFactory, body: dict[str, Any], field: str
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)

    response = await client.patch(f"{PRODUCTS}/{product['id']}", json=body, headers=staff.headers)

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {field}
    assert await get_product(client, product["id"]) == product


async def test_patch_of_an_unknown_product_is_a_404(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.patch(
        f"{PRODUCTS}/{uuid4()}", json={"name": "X"}, headers=staff.headers
    )

    assert_problem(response, 404, "product-not-found")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PATCH", "", {"name": "X"}), ("DELETE", "", None), ("PUT", "/stock", {"on_hand": 1})],
)
async def test_writes_need_catalog_write(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    staff = await make_user(Role.STAFF)
    customer = await make_user(Role.CUSTOMER)
    product = await create_product(client, staff)
    url = f"{PRODUCTS}/{product['id']}{suffix}"

    anonymous = await client.request(method, url, json=body)
    forbidden = await client.request(method, url, json=body, headers=customer.headers)

    assert_problem(anonymous, 401, "unauthorized")
    assert_problem(forbidden, 403, "forbidden")
    assert await get_product(client, product["id"]) == product


# --- archive -------------------------------------------------------------------------------


async def test_an_archived_product_vanishes_from_public_reads(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    kept = await create_product(client, staff)
    gone = await create_product(client, staff)
    await get_product(client, gone["id"])  # cached before it goes

    response = await client.delete(f"{PRODUCTS}/{gone['id']}", headers=staff.headers)

    assert response.status_code == 204, response.text
    assert_problem(await client.get(f"{PRODUCTS}/{gone['id']}"), 404, "product-not-found")
    assert await listed_ids(client) == [kept["id"]]
    events = await outbox_events(app, "catalog.ProductArchived")
    assert [e["product_id"] for e in events] == [gone["id"]]


async def test_an_archived_product_is_not_orderable_but_still_resolves(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    customer = await make_user(Role.CUSTOMER)
    product = await create_product(client, staff, sku="OLD-1", name="Old lamp")
    await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)
    facade = catalog_facade(app)

    order = await place(client, customer, (product["id"], 1))

    assert_problem(order, 422)
    assert await facade.products_for_order([UUID(product["id"])]) == []
    [resolved] = await facade.resolve_products([UUID(product["id"]), uuid4()])
    assert (resolved.sku, resolved.name, resolved.archived) == ("OLD-1", "Old lamp", True)


async def test_a_reservation_for_an_archived_product_fails_as_unavailable(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    # An order placed just before the archive: its reservation arrives after.
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=5)
    await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)
    order_id = uuid4()

    await reserve(app, order_id, product["id"], 1)

    [failed] = await outbox_events(app, "catalog.StockReservationFailed")
    assert failed["order_id"] == str(order_id)
    assert failed["reason"] == "unavailable"
    assert failed["product_ids"] == [product["id"]]


async def test_archiving_twice_is_a_404(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)
    await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)

    again = await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)
    patch = await client.patch(
        f"{PRODUCTS}/{product['id']}", json={"name": "X"}, headers=staff.headers
    )

    assert_problem(again, 404, "product-not-found")
    assert_problem(patch, 404, "product-not-found")


# --- stock ---------------------------------------------------------------------------------


async def set_stock(
    client: httpx.AsyncClient, headers: dict[str, str], product_id: str, on_hand: Any
) -> httpx.Response:
    return await client.put(
        f"{PRODUCTS}/{product_id}/stock", json={"on_hand": on_hand}, headers=headers
    )


async def test_staff_set_the_units_on_hand(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=3)

    response = await set_stock(client, staff.headers, product["id"], 40)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "product_id": product["id"],
        "on_hand": 40,
        "reserved": 0,
        "available": 40,
    }
    assert (await get_product(client, product["id"]))["stock"] == 40
    [event] = await outbox_events(app, "catalog.StockChanged")
    assert (event["product_id"], event["available"], event["cause"]) == (product["id"], 40, "set")
    assert event["changed_by"] == staff.id


async def test_units_reserved_by_orders_stay_reserved(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=10)
    order_id = uuid4()
    await reserve(app, order_id, product["id"], 4)

    counted = await set_stock(client, staff.headers, product["id"], 7)
    await release(app, order_id)

    assert counted.json() == {
        "product_id": product["id"],
        "on_hand": 7,
        "reserved": 4,
        "available": 3,
    }
    # The cancelled order's units go back on the shelf: 7 on hand, none reserved.
    assert (await get_product(client, product["id"]))["stock"] == 7


async def test_fewer_units_than_reserved_is_a_409(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=10)
    await reserve(app, uuid4(), product["id"], 4)

    response = await set_stock(client, staff.headers, product["id"], 3)

    body = assert_problem(response, 409, "stock-below-reserved")
    assert "4" in body["detail"]
    assert (await get_product(client, product["id"]))["stock"] == 6


async def test_stock_counts_racing_reservations_stay_consistent(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=20)
    orders = [uuid4() for _ in range(10)]

    results = await asyncio.gather(
        *(reserve(app, order_id, product["id"], 1) for order_id in orders),
        set_stock(client, staff.headers, product["id"], 15),
    )

    count = results[-1]
    assert isinstance(count, httpx.Response)
    assert count.status_code == 200, count.text
    reserved = len(await outbox_events(app, "catalog.StockReserved"))
    assert reserved == 10
    # Whatever the interleaving, the count kept the reservations it saw (on_hand = available +
    # reserved) and those after it took from the counted units: 15 on hand, 10 reserved.
    seen = count.json()["reserved"]
    assert count.json()["available"] == 15 - seen
    assert (await get_product(client, product["id"]))["stock"] == 5


# 5.0 is an integer to JSON schema, and so to the API (tests/test_openapi_fidelity.py).
@pytest.mark.parametrize("on_hand", [-1, "5", 5.5, True, None, 2**31])
async def test_invalid_on_hand_is_a_422(
    client: httpx.AsyncClient, make_user: UserFactory, on_hand: Any
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=3)

    response = await set_stock(client, staff.headers, product["id"], on_hand)

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {"body.on_hand"}
    assert (await get_product(client, product["id"]))["stock"] == 3


async def test_stock_of_an_unknown_or_archived_product_is_a_404(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)
    await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)

    assert_problem(await set_stock(client, staff.headers, str(uuid4()), 1), 404)
    assert_problem(await set_stock(client, staff.headers, product["id"], 1), 404)


async def test_reservations_and_releases_publish_stock_changes(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, stock=5)
    order_id = uuid4()

    await reserve(app, order_id, product["id"], 2)
    await release(app, order_id)

    events = await outbox_events(app, "catalog.StockChanged")
    assert [(e["available"], e["cause"], e["order_id"]) for e in events] == [
        (3, "reserved", str(order_id)),
        (5, "released", str(order_id)),
    ]


async def test_creating_a_product_is_published(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)

    product = await create_product(client, staff, sku="NEW-1", price="3.00")

    [event] = await outbox_events(app, "catalog.ProductCreated")
    assert (event["product_id"], event["sku"], event["price"]) == (product["id"], "NEW-1", "3.00")
