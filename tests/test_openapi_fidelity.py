"""The OpenAPI document says exactly what the API accepts: each value below is judged the same
way by the published schema and by the API (the whole document is fuzzed against the running
API in tests/test_api_fuzz.py; these are the cases an outside run found, kept as examples)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import jsonschema_rs
import pytest

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.helpers import (
    CATEGORIES,
    ORDERS,
    PRODUCTS,
    assert_problem,
    error_fields,
    keyed,
    order_body,
    product_body,
)

PASSWORD_RESET = "/api/v1/auth/password-reset"
LISTS = [PRODUCTS, ORDERS, "/api/v1/users", "/api/v1/admin/audit-log"]


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/openapi.json")).json()
    return body


@pytest.fixture
async def admin(make_user: UserFactory) -> TestUser:
    return await make_user(Role.ADMIN)


def schema_allows(document: dict[str, Any], component: str, value: Any) -> bool:
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(root).is_valid(value))


def parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
    return found


@pytest.mark.parametrize(
    ("price", "accepted"),
    [
        ("12.50", True),
        (12.5, True),
        ("9999999999.99", True),
        ("5e-324", False),  # the outside run's example: schema-valid before, a 422
        (5e-324, False),
        ("1e2", False),
        ("12345678901", False),  # eleven digits
        ("0.00", False),
        ("1.001", False),
        (" 5", False),
        ("", False),
    ],
)
async def test_a_price_is_judged_alike_by_the_schema_and_the_api(
    client: httpx.AsyncClient, document: dict[str, Any], admin: TestUser, price: Any, accepted: bool
) -> None:
    body = product_body(price=price)
    assert schema_allows(document, "ProductCreate", body) is accepted

    response = await client.post(PRODUCTS, json=body, headers=admin.headers)

    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert error_fields(assert_problem(response, 422)) == {"body.price"}


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"name": "Desks"}, True),
        ({"name": "  Desks  "}, True),
        ({"name": "   "}, False),
        ({"name": "\u3000"}, False),  # an ideographic space is blank too
        ({"name": "two\nlines"}, False),
        ({"name": None}, False),
        ({}, False),
    ],
)
async def test_a_category_change_is_judged_alike(
    client: httpx.AsyncClient,
    document: dict[str, Any],
    admin: TestUser,
    body: dict[str, Any],
    accepted: bool,
) -> None:
    created = await client.post(CATEGORIES, json={"name": "Chairs"}, headers=admin.headers)
    assert schema_allows(document, "CategoryUpdate", body) is accepted

    response = await client.patch(
        f"{CATEGORIES}/{created.json()['id']}", json=body, headers=admin.headers
    )

    assert response.status_code == (200 if accepted else 422), response.text


@pytest.mark.parametrize(
    ("on_hand", "accepted"),
    [(5, True), (5.0, True), (0, True), (-1, False), (5.5, False), ("5", False), (True, False)],
)
async def test_stock_is_a_json_integer_as_the_schema_says(
    client: httpx.AsyncClient,
    document: dict[str, Any],
    admin: TestUser,
    on_hand: Any,
    accepted: bool,
) -> None:
    product = (await client.post(PRODUCTS, json=product_body(), headers=admin.headers)).json()
    body = {"on_hand": on_hand}
    assert schema_allows(document, "StockUpdate", body) is accepted

    response = await client.put(
        f"{PRODUCTS}/{product['id']}/stock", json=body, headers=admin.headers
    )

    assert response.status_code == (200 if accepted else 422), response.text


@pytest.mark.parametrize(("country", "accepted"), [("DE", True), ("AA", False), ("de", False)])
async def test_shipping_countries_are_an_enum_of_iso_codes(
    document: dict[str, Any], country: str, accepted: bool
) -> None:
    address = document["components"]["schemas"]["ShippingAddress"]["properties"]["country"]
    assert (country in address["enum"]) is accepted
    assert len(address["enum"]) > 200


async def test_an_order_names_each_product_once(client: httpx.AsyncClient, admin: TestUser) -> None:
    product = (await client.post(PRODUCTS, json=product_body(), headers=admin.headers)).json()
    body = order_body((product["id"], 1), (product["id"], 2))

    response = await client.post(ORDERS, json=body, headers=keyed(admin))

    assert_problem(response, 422, "duplicate-order-lines")


async def test_the_idempotency_key_is_a_required_header(
    client: httpx.AsyncClient, document: dict[str, Any], admin: TestUser
) -> None:
    declared = parameter(document, ORDERS, "post", "Idempotency-Key")
    assert declared["in"] == "header"
    assert declared["required"] is True
    assert declared["schema"]["type"] == "string"

    response = await client.post(ORDERS, json=order_body((str(uuid4()), 1)), headers=admin.headers)

    assert_problem(response, 400, "idempotency-key-required")


async def test_the_password_reset_202_has_no_body_and_none_is_documented(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    documented = document["paths"][PASSWORD_RESET]["post"]["responses"]["202"]
    assert "content" not in documented

    response = await client.post(PASSWORD_RESET, json={"email": "nobody@example.com"})

    assert response.status_code == 202
    assert response.content == b""


@pytest.mark.parametrize("path", LISTS)
async def test_cursors_are_documented_and_a_bad_one_is_a_clear_problem(
    client: httpx.AsyncClient, document: dict[str, Any], admin: TestUser, path: str
) -> None:
    declared = parameter(document, path, "get", "cursor")
    cursor = declared["schema"]["anyOf"][0]
    assert cursor["pattern"] == "^[A-Za-z0-9_-]+$"
    assert cursor["maxLength"] >= 500
    assert "Opaque" in declared["description"]

    malformed = await client.get(path, params={"cursor": "a+b/c="}, headers=admin.headers)
    assert error_fields(assert_problem(malformed, 422, "validation-error")) == {"query.cursor"}
    # Well-formed, yet not one this API issued.
    unknown = await client.get(path, params={"cursor": "bm90LWlzc3VlZA"}, headers=admin.headers)
    assert_problem(unknown, 400, "invalid-cursor")
