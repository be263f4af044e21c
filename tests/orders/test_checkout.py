"""Placing an order through the HTTP API: it starts 'pending', then the catalog's answer to
`OrderPlaced` makes it 'confirmed' (stock taken) or 'rejected' (stock untouched)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.helpers import (
    ADDRESS,
    ORDERS,
    assert_problem,
    create_product,
    error_fields,
    finished,
    keyed,
    order_body,
    place,
    place_ok,
    read_order,
    statuses,
    stock_of,
)

# --- the happy path --------------------------------------------------------------------------


async def test_order_is_placed_pending_then_confirmed_and_takes_stock(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    desk = await create_product(client, staff, sku="DESK", name="Desk", price="12.50", stock=10)
    pen = await create_product(client, staff, sku="PEN", name="Pen", price="0.99", stock=5)

    response = await place(client, customer, (desk["id"], 2), (pen["id"], 3))

    assert response.status_code == 201, response.text
    placed = response.json()
    assert set(placed) == {
        "id",
        "customer_id",
        "status",
        "total",
        "currency",
        "created_at",
        "shipping_address",
        "lines",
        "history",
    }
    assert placed["shipping_address"] == ADDRESS
    assert placed["status"] == "pending"
    assert placed["customer_id"] == customer.id
    assert placed["currency"] == "EUR"
    assert placed["total"] == "27.97"  # 2 x 12.50 + 3 x 0.99, as a decimal string
    assert placed["lines"] == [
        {
            "product_id": desk["id"],
            "sku": "DESK",
            "name": "Desk",
            "unit_price": "12.50",
            "quantity": 2,
        },
        {"product_id": pen["id"], "sku": "PEN", "name": "Pen", "unit_price": "0.99", "quantity": 3},
    ]
    assert [(c["status"], c["cause"]) for c in placed["history"]] == [("pending", "placed")]

    confirmed = await finished(client, customer, placed["id"])

    assert confirmed["status"] == "confirmed"
    assert [(c["status"], c["cause"]) for c in confirmed["history"]] == [
        ("pending", "placed"),
        ("stock_reserved", "stock reserved"),
        ("paid", "payment authorised"),
        ("confirmed", "payment captured"),
    ]
    moments = [change["at"] for change in confirmed["history"]]
    assert moments == sorted(moments)
    assert {k: confirmed[k] for k in ("id", "customer_id", "total", "currency", "lines")} == {
        k: placed[k] for k in ("id", "customer_id", "total", "currency", "lines")
    }
    assert await stock_of(client, desk["id"]) == 8
    assert await stock_of(client, pen["id"]) == 2


async def test_ordering_the_whole_stock_is_confirmed_and_leaves_zero(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=3)

    order = await place_ok(client, customer, (lamp["id"], 3))

    assert (await finished(client, customer, order["id"]))["status"] == "confirmed"
    assert await stock_of(client, lamp["id"]) == 0


async def test_staff_may_place_orders_too(client: httpx.AsyncClient, staff: TestUser) -> None:
    lamp = await create_product(client, staff, stock=1)

    order = await place_ok(client, staff, (lamp["id"], 1))

    assert order["customer_id"] == staff.id
    assert (await finished(client, staff, order["id"]))["status"] == "confirmed"


async def test_fifty_lines_are_allowed(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    products = [await create_product(client, staff, price="1.00", stock=1) for _ in range(50)]

    order = await place_ok(client, customer, *[(p["id"], 1) for p in products])

    assert len(order["lines"]) == 50
    assert order["total"] == "50.00"
    assert (await finished(client, customer, order["id"]))["status"] == "confirmed"
    assert [await stock_of(client, p["id"]) for p in products] == [0] * 50


async def test_a_full_line_at_the_highest_price_is_accepted(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    dear = await create_product(client, staff, price="9999999999.99", stock=100)

    order = await place_ok(client, customer, (dear["id"], 100))

    assert order["total"] == "999999999999.00"
    confirmed = await finished(client, customer, order["id"])
    assert confirmed["status"] == "confirmed"
    assert confirmed["total"] == "999999999999.00"


async def test_a_total_the_orders_table_cannot_hold_is_a_422_not_a_500(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    """Two full lines at the highest product price come to 1999999999998.00, which is more
    than the NUMERIC(14, 2) total column holds."""
    dear = [await create_product(client, staff, price="9999999999.99", stock=100) for _ in range(2)]

    response = await place(client, customer, *[(p["id"], 100) for p in dear])

    assert_problem(response, 422, "order-total-too-large")
    assert [await stock_of(client, p["id"]) for p in dear] == [100, 100]


# --- the catalog says no ---------------------------------------------------------------------


async def test_order_beyond_stock_is_rejected_and_stock_is_unchanged(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=2)

    order = await place_ok(client, customer, (lamp["id"], 3))
    assert order["status"] == "pending"

    rejected = await finished(client, customer, order["id"])

    assert rejected["status"] == "rejected"
    assert [(c["status"], c["cause"]) for c in rejected["history"]] == [
        ("pending", "placed"),
        ("rejected", "out_of_stock"),
    ]
    assert await stock_of(client, lamp["id"]) == 2


async def test_product_with_no_stock_rejects_even_one_unit(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=0)

    order = await place_ok(client, customer, (lamp["id"], 1))

    assert statuses(await finished(client, customer, order["id"])) == ["pending", "rejected"]
    assert await stock_of(client, lamp["id"]) == 0


# --- invalid orders --------------------------------------------------------------------------


async def test_unknown_product_is_a_422_naming_it(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    known = await create_product(client, staff, stock=5)
    unknown = str(uuid4())

    response = await place(client, customer, (known["id"], 1), (unknown, 1))

    body = assert_problem(response, 422, "unknown-products")
    assert unknown in body["detail"]
    assert known["id"] not in body["detail"]
    assert await stock_of(client, known["id"]) == 5


async def test_mixed_currencies_are_a_422(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    euros = await create_product(client, staff, currency="EUR")
    dollars = await create_product(client, staff, currency="USD")

    response = await place(client, customer, (euros["id"], 1), (dollars["id"], 1))

    assert_problem(response, 422, "mixed-currencies")


async def test_the_same_product_twice_is_a_422(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)

    response = await place(client, customer, (lamp["id"], 1), (lamp["id"], 2))

    body = assert_problem(response, 422, "duplicate-order-lines")
    assert "once" in body["detail"]


@pytest.mark.parametrize("quantity", [0, -1, 101, "1", 1.5, True, None])
async def test_quantity_out_of_range_or_not_an_integer_is_a_422(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser, quantity: object
) -> None:
    lamp = await create_product(client, staff, stock=500)
    items = [{"product_id": lamp["id"], "quantity": quantity}]

    body = order_body()
    body["items"] = items
    response = await client.post(ORDERS, json=body, headers=keyed(customer))

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {"body.items.0.quantity"}


async def test_quantity_bounds_are_accepted(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    one = await create_product(client, staff, stock=500)
    hundred = await create_product(client, staff, stock=500)

    order = await place_ok(client, customer, (one["id"], 1), (hundred["id"], 100))

    assert [line["quantity"] for line in order["lines"]] == [1, 100]
    assert (await finished(client, customer, order["id"]))["status"] == "confirmed"
    assert [await stock_of(client, one["id"]), await stock_of(client, hundred["id"])] == [499, 400]


async def test_fifty_one_lines_are_a_422(client: httpx.AsyncClient, customer: TestUser) -> None:
    response = await place(client, customer, *[(str(uuid4()), 1) for _ in range(51)])

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {"body.items"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "body.items"),
        ({"items": None}, "body.items"),
        ({"items": {"product_id": "x", "quantity": 1}}, "body.items"),
        ({"items": [{"quantity": 1}]}, "body.items.0.product_id"),
        ({"items": [{"product_id": "nope", "quantity": 1}]}, "body.items.0.product_id"),
        (
            {"items": [{"product_id": "00000000-0000-0000-0000-000000000001"}]},
            "body.items.0.quantity",
        ),
        (
            {
                "items": [
                    {
                        "product_id": "00000000-0000-0000-0000-000000000001",
                        "quantity": 1,
                        "price": "0.01",
                    }
                ]
            },
            "body.items.0.price",
        ),
        (
            {
                "items": [{"product_id": "00000000-0000-0000-0000-000000000001", "quantity": 1}],
                "customer_id": "x",
            },
            "body.customer_id",
        ),
        ({"shipping_address": None}, "body.shipping_address"),
        ({"payment_method": None}, "body.payment_method"),
        ({"payment_method": "pm card visa"}, "body.payment_method"),
        ({"payment_method": "p" * 101}, "body.payment_method"),
        ({"payment_method": "4242424242424242\u0000"}, "body.payment_method"),
        ({"shipping_address": {**ADDRESS, "country": "XX"}}, "body.shipping_address.country"),
        ({"shipping_address": {**ADDRESS, "country": "gb"}}, "body.shipping_address.country"),
        ({"shipping_address": {**ADDRESS, "country": "GBR"}}, "body.shipping_address.country"),
        ({"shipping_address": {**ADDRESS, "name": "x" * 201}}, "body.shipping_address.name"),
        ({"shipping_address": {**ADDRESS, "name": " "}}, "body.shipping_address.name"),
        ({"shipping_address": {**ADDRESS, "line1": "a\u0000b"}}, "body.shipping_address.line1"),
        ({"shipping_address": {**ADDRESS, "line2": "x" * 201}}, "body.shipping_address.line2"),
        ({"shipping_address": {**ADDRESS, "city": None}}, "body.shipping_address.city"),
        (
            {"shipping_address": {**ADDRESS, "postal_code": "1" * 17}},
            "body.shipping_address.postal_code",
        ),
        (
            {"shipping_address": {**ADDRESS, "postal_code": "75<b>"}},
            "body.shipping_address.postal_code",
        ),
        ({"shipping_address": {**ADDRESS, "floor": 3}}, "body.shipping_address.floor"),
    ],
)
async def test_malformed_order_is_a_422_naming_the_field(
    client: httpx.AsyncClient, customer: TestUser, body: dict[str, Any], field: str
) -> None:
    valid = order_body(("00000000-0000-0000-0000-000000000001", 1))
    response = await client.post(ORDERS, json={**valid, **body}, headers=keyed(customer))

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {field}


async def test_anonymous_cannot_place_an_order(client: httpx.AsyncClient, staff: TestUser) -> None:
    lamp = await create_product(client, staff, stock=5)

    response = await client.post(
        ORDERS, json=order_body((lamp["id"], 1)), headers={"Idempotency-Key": "k1"}
    )

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await stock_of(client, lamp["id"]) == 5


# --- who may read an order -------------------------------------------------------------------


async def test_customer_reads_their_own_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order = await place_ok(client, customer, (lamp["id"], 1))

    read = await read_order(client, customer, order["id"])

    assert read["id"] == order["id"]
    assert read["customer_id"] == customer.id
    assert read["lines"] == order["lines"]
    await finished(client, customer, order["id"])


async def test_someone_elses_order_is_not_found_not_forbidden(
    client: httpx.AsyncClient, make_user: UserFactory, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order = await place_ok(client, customer, (lamp["id"], 1))
    other = await make_user(Role.CUSTOMER)

    theirs = await client.get(f"{ORDERS}/{order['id']}", headers=other.headers)
    nobodys = await client.get(f"{ORDERS}/{uuid4()}", headers=other.headers)

    body = assert_problem(theirs, 404, "order-not-found")
    # Indistinguishable from an id that does not exist: ids cannot be probed.
    assert body["detail"] == assert_problem(nobodys, 404, "order-not-found")["detail"]
    assert customer.id not in theirs.text
    await finished(client, customer, order["id"])


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN])
async def test_staff_and_admin_read_any_order(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    staff: TestUser,
    customer: TestUser,
    role: Role,
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order = await place_ok(client, customer, (lamp["id"], 1))
    reader = await make_user(role)

    read = await finished(client, reader, order["id"])

    assert read["id"] == order["id"]
    assert read["customer_id"] == customer.id
    assert read["status"] == "confirmed"


async def test_anonymous_cannot_read_an_order(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=5)
    order = await place_ok(client, customer, (lamp["id"], 1))

    response = await client.get(f"{ORDERS}/{order['id']}")

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    await finished(client, customer, order["id"])


async def test_unknown_order_is_a_404(client: httpx.AsyncClient, customer: TestUser) -> None:
    response = await client.get(f"{ORDERS}/{uuid4()}", headers=customer.headers)

    assert_problem(response, 404, "order-not-found")


async def test_malformed_order_id_is_a_422(client: httpx.AsyncClient, customer: TestUser) -> None:
    response = await client.get(f"{ORDERS}/not-a-uuid", headers=customer.headers)

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {"path.order_id"}
