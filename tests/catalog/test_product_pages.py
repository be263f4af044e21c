"""Listing products: newest first, keyset pages with an opaque cursor."""

from __future__ import annotations

import base64
import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.helpers import PRODUCTS, assert_problem, create_product, error_fields


def forged_cursor(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(PRODUCTS, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


async def walk(client: httpx.AsyncClient, limit: int) -> list[list[dict[str, Any]]]:
    """Every page, following next_cursor until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        body = await page(client, **params)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not terminate"


async def test_empty_catalog_is_an_empty_page(client: httpx.AsyncClient) -> None:
    assert await page(client) == {"items": [], "next_cursor": None}


async def test_pages_of_two_show_every_product_once_newest_first(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    created = [await create_product(client, staff, name=f"Product {i}") for i in range(5)]

    pages = await walk(client, limit=2)

    assert [len(items) for items in pages] == [2, 2, 1]
    seen = [item["id"] for items in pages for item in items]
    assert seen == [product["id"] for product in reversed(created)]
    assert [item for items in pages for item in items] == list(reversed(created))


async def test_an_exactly_full_last_page_ends_the_walk(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    created = [await create_product(client, staff) for _ in range(4)]

    pages = await walk(client, limit=2)

    # The second page already knows nothing follows: no trailing empty page.
    assert [[item["id"] for item in items] for items in pages] == [
        [created[3]["id"], created[2]["id"]],
        [created[1]["id"], created[0]["id"]],
    ]


async def test_default_page_size_is_twenty(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    created = [await create_product(client, staff) for _ in range(21)]

    first = await page(client)
    rest = await page(client, cursor=first["next_cursor"])

    assert [p["id"] for p in first["items"]] == [p["id"] for p in reversed(created[1:])]
    assert first["next_cursor"] is not None
    assert rest == {"items": [created[0]], "next_cursor": None}


async def test_a_cursor_is_a_fixed_position_products_added_later_do_not_shift_it(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    old = [await create_product(client, staff) for _ in range(3)]
    first = await page(client, limit=1)

    await create_product(client, staff)  # newer than everything: belongs before the cursor
    second = await page(client, limit=5, cursor=first["next_cursor"])

    assert first["items"] == [old[2]]
    assert second == {"items": [old[1], old[0]], "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
async def test_limit_out_of_range_is_a_422(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get(PRODUCTS, params={"limit": limit})

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {"query.limit"}


async def test_limit_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await page(client, limit=1))["items"] == []
    assert (await page(client, limit=100))["items"] == []


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        "====",
        forged_cursor(["2024-01-01T00:00:00+00:00", str(uuid4())]),
        forged_cursor("just a string"),
        forged_cursor(42),
        forged_cursor(None),
        forged_cursor({}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00"}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": str(uuid4()), "extra": 1}),
        forged_cursor({"created_at": "yesterday", "id": str(uuid4())}),
        forged_cursor({"created_at": 1_700_000_000, "id": str(uuid4())}),
        forged_cursor({"created_at": None, "id": str(uuid4())}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": "not-a-uuid"}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": 7}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": ["x"]}),
        forged_cursor({"created_at": "2024-01-01T00:00:00", "id": str(uuid4())}),  # naive
        forged_cursor({"created_at": "9999-12-31T23:59:59-14:00", "id": str(uuid4())}),
        forged_cursor({"created_at": "0001-01-01T00:00:00+14:00", "id": str(uuid4())}),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ],
)
async def test_a_cursor_this_api_did_not_issue_is_a_400(
    client: httpx.AsyncClient, make_user: UserFactory, cursor: str
) -> None:
    staff = await make_user(Role.STAFF)
    await create_product(client, staff)

    response = await client.get(PRODUCTS, params={"cursor": cursor})

    body = assert_problem(response, 400, "invalid-cursor")
    assert "cursor" in body["detail"]


async def test_an_overlong_cursor_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get(PRODUCTS, params={"cursor": "a" * 501})

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {"query.cursor"}
