"""Creating and reading products through the HTTP API: who may write, what is valid input."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.helpers import (
    CATEGORIES,
    PRODUCTS,
    assert_problem,
    create_product,
    error_fields,
    get_product,
    product_body,
)


async def list_all(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(PRODUCTS, params={"limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- creating --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN])
async def test_staff_and_admin_create_a_product(
    client: httpx.AsyncClient, make_user: UserFactory, role: Role
) -> None:
    writer = await make_user(role)
    body = product_body(
        sku="DESK-1", name="Walnut desk", description="Solid\nwalnut", price="12.50", stock=7
    )

    response = await client.post(PRODUCTS, json=body, headers=writer.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {
        "id",
        "sku",
        "name",
        "description",
        "price",
        "currency",
        "stock",
        "category_id",
        "created_at",
    }
    assert created["sku"] == "DESK-1"
    assert created["name"] == "Walnut desk"
    assert created["description"] == "Solid\nwalnut"
    assert created["price"] == "12.50"  # a decimal string, never a float
    assert created["currency"] == "EUR"
    assert created["stock"] == 7
    assert created["category_id"] is None
    assert await get_product(client, created["id"]) == created


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("12.5", "12.50"), (12.5, "12.50"), ("7", "7.00"), (3, "3.00"), (1e1, "10.00")],
)
async def test_price_is_always_shown_with_two_decimals(
    client: httpx.AsyncClient, make_user: UserFactory, sent: object, shown: str
) -> None:
    staff = await make_user(Role.STAFF)

    created = await create_product(client, staff, price=sent)

    assert created["price"] == shown
    assert (await get_product(client, created["id"]))["price"] == shown


async def test_name_is_trimmed_and_description_defaults_to_empty(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    body = product_body(name="  Lamp  ")
    body.pop("stock")

    response = await client.post(PRODUCTS, json=body, headers=staff.headers)

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Lamp"
    assert response.json()["description"] == ""
    assert response.json()["stock"] == 0


async def test_name_of_200_characters_and_max_stock_are_accepted(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)

    created = await create_product(client, staff, name="n" * 200, stock=2_147_483_647)

    assert created["name"] == "n" * 200
    assert (await get_product(client, created["id"]))["stock"] == 2_147_483_647


async def test_anonymous_cannot_create_a_product(client: httpx.AsyncClient) -> None:
    response = await client.post(PRODUCTS, json=product_body())

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await list_all(client) == []


async def test_a_forged_token_is_a_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        PRODUCTS, json=product_body(), headers={"Authorization": "Bearer not.a.token"}
    )

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await list_all(client) == []


async def test_customer_cannot_create_a_product(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    customer = await make_user(Role.CUSTOMER)

    response = await client.post(PRODUCTS, json=product_body(), headers=customer.headers)

    body = assert_problem(response, 403, "forbidden")
    assert "catalog:write" in body["detail"]
    assert await list_all(client) == []


async def test_duplicate_sku_is_a_409_and_keeps_the_first(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    first = await create_product(client, staff, sku="DUP-1", name="First")

    response = await client.post(
        PRODUCTS, json=product_body(sku="DUP-1", name="Second"), headers=staff.headers
    )

    body = assert_problem(response, 409, "sku-taken")
    assert "DUP-1" in body["detail"]
    assert [p["id"] for p in await list_all(client)] == [first["id"]]
    assert (await get_product(client, first["id"]))["name"] == "First"


async def test_unknown_category_is_a_422(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.post(
        PRODUCTS, json=product_body(category_id=str(uuid4())), headers=staff.headers
    )

    body = assert_problem(response, 422, "unknown-category")
    assert "category_id" in body["detail"]
    assert await list_all(client) == []


async def test_product_in_an_existing_category(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    category = await client.post(CATEGORIES, json={"name": "Desks"}, headers=staff.headers)
    assert category.status_code == 201, category.text

    created = await create_product(client, staff, category_id=category.json()["id"])

    assert created["category_id"] == category.json()["id"]
    assert (await get_product(client, created["id"]))["category_id"] == category.json()["id"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"roles": ["admin"]}, "body.roles"),
        ({"id": str(uuid4())}, "body.id"),
        ({"price": "0"}, "body.price"),
        ({"price": 0}, "body.price"),
        ({"price": "-1.00"}, "body.price"),
        ({"price": "12.345"}, "body.price"),
        ({"price": 1e20}, "body.price"),
        ({"price": "10000000000.00"}, "body.price"),
        ({"price": "NaN"}, "body.price"),
        ({"price": "Infinity"}, "body.price"),
        ({"price": "twelve"}, "body.price"),
        ({"price": "1E+1"}, "body.price"),  # as text, only the documented plain form
        ({"price": " 12.50"}, "body.price"),
        ({"price": None}, "body.price"),
        ({"currency": "eur"}, "body.currency"),
        ({"currency": "EURO"}, "body.currency"),
        ({"currency": ""}, "body.currency"),
        ({"stock": "5"}, "body.stock"),
        ({"stock": 5.5}, "body.stock"),
        ({"stock": True}, "body.stock"),
        ({"stock": -1}, "body.stock"),
        ({"stock": 2_147_483_648}, "body.stock"),
        ({"stock": 10**30}, "body.stock"),
        ({"name": "A\u0000B"}, "body.name"),
        ({"name": "tab\there"}, "body.name"),
        ({"name": "line\nbreak"}, "body.name"),
        ({"name": "n" * 201}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": 42}, "body.name"),
        ({"description": "A\u0000B"}, "body.description"),
        ({"description": "d" * 5001}, "body.description"),
        ({"sku": ""}, "body.sku"),
        ({"sku": "has space"}, "body.sku"),
        ({"sku": "-leading-dash"}, "body.sku"),
        ({"sku": "S" * 65}, "body.sku"),
        ({"category_id": "not-a-uuid"}, "body.category_id"),
    ],
)
async def test_invalid_product_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: UserFactory, changes: dict[str, Any], field: str
) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.post(PRODUCTS, json=product_body(**changes), headers=staff.headers)

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {field}
    assert field in body["detail"]
    assert await list_all(client) == []


@pytest.mark.parametrize("missing", ["sku", "name", "price", "currency"])
async def test_required_product_fields_are_named_when_missing(
    client: httpx.AsyncClient, make_user: UserFactory, missing: str
) -> None:
    staff = await make_user(Role.STAFF)
    body = product_body()
    body.pop(missing)

    response = await client.post(PRODUCTS, json=body, headers=staff.headers)

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {f"body.{missing}"}


async def test_body_that_is_not_an_object_is_a_422(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.post(PRODUCTS, json=[product_body()], headers=staff.headers)

    assert_problem(response, 422, "validation-error")
    assert await list_all(client) == []


# --- reading one -----------------------------------------------------------------------------


async def test_anyone_can_read_a_product(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    created = await create_product(client, staff, price="99.99", stock=3)

    response = await client.get(f"{PRODUCTS}/{created['id']}")  # no credentials

    assert response.status_code == 200, response.text
    assert response.json() == created


async def test_unknown_product_is_a_404_problem(client: httpx.AsyncClient) -> None:
    path = f"{PRODUCTS}/{uuid4()}"

    body = assert_problem(await client.get(path), 404, "product-not-found")

    assert body["instance"] == path


@pytest.mark.parametrize("product_id", ["not-a-uuid", "123", "0" * 33])
async def test_malformed_product_id_is_a_422(client: httpx.AsyncClient, product_id: str) -> None:
    body = assert_problem(await client.get(f"{PRODUCTS}/{product_id}"), 422, "validation-error")

    assert error_fields(body) == {"path.product_id"}
