"""Categories through the HTTP API: staff create them, anyone lists them."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.helpers import (
    CATEGORIES,
    PRODUCTS,
    assert_problem,
    create_product,
    error_fields,
    outbox_events,
)


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


# --- the tree, renaming, moving, deleting ------------------------------------------------------


async def create_category(
    client: httpx.AsyncClient, writer: TestUser, name: str, parent_id: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        CATEGORIES, json={"name": name, "parent_id": parent_id}, headers=writer.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_subcategory_names_its_parent(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = await create_category(client, staff, "Coffee")

    beans = await create_category(client, staff, "Beans", coffee["id"])

    assert beans["parent_id"] == coffee["id"]
    assert {c["name"]: c["parent_id"] for c in await all_categories(client)} == {
        "Beans": coffee["id"],
        "Coffee": None,
    }


async def test_categories_nest_one_level_only(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = await create_category(client, staff, "Coffee")
    beans = await create_category(client, staff, "Beans", coffee["id"])

    response = await client.post(
        CATEGORIES, json={"name": "Arabica", "parent_id": beans["id"]}, headers=staff.headers
    )

    assert_problem(response, 422, "category-too-deep")
    assert len(await all_categories(client)) == 2


async def test_unknown_parent_is_a_422(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.post(
        CATEGORIES, json={"name": "Beans", "parent_id": str(uuid4())}, headers=staff.headers
    )

    assert_problem(response, 422, "unknown-parent-category")
    assert await all_categories(client) == []


async def test_rename_a_category(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    desks = await create_category(client, staff, "Desks")

    response = await client.patch(
        f"{CATEGORIES}/{desks['id']}", json={"name": " Tables "}, headers=staff.headers
    )

    assert response.status_code == 200, response.text
    assert response.json() == {**desks, "name": "Tables"}
    assert await all_categories(client) == [response.json()]


async def test_rename_to_a_taken_name_is_a_409(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    await create_category(client, staff, "Desks")
    lamps = await create_category(client, staff, "Lamps")

    response = await client.patch(
        f"{CATEGORIES}/{lamps['id']}", json={"name": "Desks"}, headers=staff.headers
    )

    assert_problem(response, 409, "category-name-taken")
    assert sorted(c["name"] for c in await all_categories(client)) == ["Desks", "Lamps"]


async def test_move_under_a_parent_and_back_to_the_top(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = await create_category(client, staff, "Coffee")
    beans = await create_category(client, staff, "Beans")
    url = f"{CATEGORIES}/{beans['id']}"

    moved = await client.patch(url, json={"parent_id": coffee["id"]}, headers=staff.headers)
    back = await client.patch(url, json={"parent_id": None}, headers=staff.headers)

    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == coffee["id"]
    assert back.status_code == 200, back.text
    assert back.json()["parent_id"] is None


@pytest.mark.parametrize("case", ["itself", "under_a_child", "parent_with_children"])
async def test_moves_that_would_nest_deeper_are_a_422(
    client: httpx.AsyncClient, make_user: UserFactory, case: str
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = await create_category(client, staff, "Coffee")
    beans = await create_category(client, staff, "Beans", coffee["id"])
    tea = await create_category(client, staff, "Tea")
    moving, parent = {
        "itself": (tea, tea),
        "under_a_child": (tea, beans),
        "parent_with_children": (coffee, tea),
    }[case]
    before = await all_categories(client)

    response = await client.patch(
        f"{CATEGORIES}/{moving['id']}", json={"parent_id": parent["id"]}, headers=staff.headers
    )

    assert_problem(response, 422, "category-too-deep")
    assert await all_categories(client) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"name": None}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"x": 1}, "body.x"),
    ],
)
async def test_invalid_category_change_is_a_422(
    client: httpx.AsyncClient, make_user: UserFactory, body: dict[str, Any], field: str
) -> None:
    staff = await make_user(Role.STAFF)
    desks = await create_category(client, staff, "Desks")

    response = await client.patch(f"{CATEGORIES}/{desks['id']}", json=body, headers=staff.headers)

    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {field}
    assert await all_categories(client) == [desks]


async def test_delete_an_unused_category(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    desks = await create_category(client, staff, "Desks")

    response = await client.delete(f"{CATEGORIES}/{desks['id']}", headers=staff.headers)

    assert response.status_code == 204, response.text
    assert await all_categories(client) == []


async def test_delete_a_category_with_products_is_a_409(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    desks = await create_category(client, staff, "Desks")
    product = await create_product(client, staff, category_id=desks["id"])
    # Archived products still name their category, so it stays in use.
    archived = await client.delete(f"{PRODUCTS}/{product['id']}", headers=staff.headers)
    assert archived.status_code == 204, archived.text

    response = await client.delete(f"{CATEGORIES}/{desks['id']}", headers=staff.headers)

    body = assert_problem(response, 409, "category-in-use")
    assert "1 product" in body["detail"]
    assert await all_categories(client) == [desks]


async def test_delete_a_category_with_subcategories_is_a_409(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = await create_category(client, staff, "Coffee")
    await create_category(client, staff, "Beans", coffee["id"])

    response = await client.delete(f"{CATEGORIES}/{coffee['id']}", headers=staff.headers)

    body = assert_problem(response, 409, "category-in-use")
    assert "1 subcategory" in body["detail"]
    assert len(await all_categories(client)) == 2


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_unknown_category_is_a_404(
    client: httpx.AsyncClient, make_user: UserFactory, method: str
) -> None:
    staff = await make_user(Role.STAFF)

    response = await client.request(
        method,
        f"{CATEGORIES}/{uuid4()}",
        json={"name": "X"} if method == "PATCH" else None,
        headers=staff.headers,
    )

    assert_problem(response, 404, "category-not-found")


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_customer_cannot_change_categories(
    client: httpx.AsyncClient, make_user: UserFactory, method: str
) -> None:
    staff = await make_user(Role.STAFF)
    customer = await make_user(Role.CUSTOMER)
    desks = await create_category(client, staff, "Desks")

    response = await client.request(
        method,
        f"{CATEGORIES}/{desks['id']}",
        json={"name": "X"} if method == "PATCH" else None,
        headers=customer.headers,
    )

    assert_problem(response, 403, "forbidden")
    assert await all_categories(client) == [desks]


async def test_category_changes_are_published(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    desks = await create_category(client, staff, "Desks")
    await client.patch(f"{CATEGORIES}/{desks['id']}", json={"name": "T"}, headers=staff.headers)
    await client.delete(f"{CATEGORIES}/{desks['id']}", headers=staff.headers)

    events = await outbox_events(app, "catalog.CategoryChanged")

    assert [(e["category_id"], e["change"]) for e in events] == [
        (desks["id"], "created"),
        (desks["id"], "updated"),
        (desks["id"], "deleted"),
    ]
