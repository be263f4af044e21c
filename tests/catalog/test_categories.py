"""Categories through the HTTP API: staff create them, anyone lists them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.helpers import CATEGORIES, assert_problem, error_fields


async def all_categories(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(CATEGORIES)
    assert response.status_code == 200, response.text
    categories: list[dict[str, Any]] = response.json()
    return categories


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN])
async def test_staff_and_admin_create_a_category(
    client: httpx.AsyncClient, make_user: UserFactory, role: Role
) -> None:
    writer = await make_user(role)

    response = await client.post(CATEGORIES, json={"name": "  Desks "}, headers=writer.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "parent_id"}
    assert created["parent_id"] is None
    assert created["name"] == "Desks"
    assert await all_categories(client) == [created]


async def test_categories_are_listed_by_name_without_credentials(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    for name in ["Lamps", "Chairs", "Desks"]:
        response = await client.post(CATEGORIES, json={"name": name}, headers=staff.headers)
        assert response.status_code == 201, response.text

    names = [category["name"] for category in await all_categories(client)]

    assert names == ["Chairs", "Desks", "Lamps"]


async def test_empty_category_list(client: httpx.AsyncClient) -> None:
    assert await all_categories(client) == []


@pytest.mark.parametrize("second", ["Desks", " Desks  "])
async def test_duplicate_category_name_is_a_409(
    client: httpx.AsyncClient, make_user: UserFactory, second: str
) -> None:
    staff = await make_user(Role.STAFF)
    first = await client.post(CATEGORIES, json={"name": "Desks"}, headers=staff.headers)
    assert first.status_code == 201, first.text

    response = await client.post(CATEGORIES, json={"name": second}, headers=staff.headers)

    body = assert_problem(response, 409, "category-name-taken")
    assert "Desks" in body["detail"]
    assert await all_categories(client) == [first.json()]


async def test_customer_cannot_create_a_category(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    customer = await make_user(Role.CUSTOMER)

    response = await client.post(CATEGORIES, json={"name": "Desks"}, headers=customer.headers)

    assert_problem(response, 403, "forbidden")
    assert await all_categories(client) == []


async def test_anonymous_cannot_create_a_category(client: httpx.AsyncClient) -> None:
    response = await client.post(CATEGORIES, json={"name": "Desks"})

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await all_categories(client) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "  "}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"name": "A\u0000B"}, "body.name"),
        ({"name": None}, "body.name"),
        ({"name": "Desks", "id": "00000000-0000-0000-0000-000000000001"}, "body.id"),
    ],
)
async def test_invalid_category_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: UserFactory, body: dict[str, Any], field: str
) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.post(CATEGORIES, json=body, headers=staff.headers)

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {field}
    assert await all_categories(client) == []
