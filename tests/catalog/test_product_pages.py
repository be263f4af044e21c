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
from tests.helpers import CATEGORIES, PRODUCTS, assert_problem, create_product, error_fields


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


# Fixed, so every pytest-xdist worker collects the same test ids.
ANY_ID = "f1ee8a2d-70fc-4b7c-9724-ed1b02235b33"


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        "====",
        forged_cursor(["2024-01-01T00:00:00+00:00", ANY_ID]),
        forged_cursor("just a string"),
        forged_cursor(42),
        forged_cursor(None),
        forged_cursor({}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00"}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": ANY_ID, "extra": 1}),
        forged_cursor({"created_at": "yesterday", "id": ANY_ID}),
        forged_cursor({"created_at": 1_700_000_000, "id": ANY_ID}),
        forged_cursor({"created_at": None, "id": ANY_ID}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": "not-a-uuid"}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": 7}),
        forged_cursor({"created_at": "2024-01-01T00:00:00+00:00", "id": ["x"]}),
        forged_cursor({"created_at": "2024-01-01T00:00:00", "id": ANY_ID}),  # naive
        forged_cursor({"created_at": "9999-12-31T23:59:59-14:00", "id": ANY_ID}),
        forged_cursor({"created_at": "0001-01-01T00:00:00+14:00", "id": ANY_ID}),
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
    response = await client.get(PRODUCTS, params={"cursor": "a" * 2_001})

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {"query.cursor"}


# --- sorts, filters and search -----------------------------------------------------------------


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def walk_with(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, one page of two at a time."""
    items: list[dict[str, Any]] = []
    for _ in range(50):
        body = await page(client, limit=2, **params)
        items.extend(body["items"])
        params["cursor"] = body["next_cursor"]
        if params["cursor"] is None:
            return items
    raise AssertionError("pagination does not terminate")


@pytest.fixture
async def shelf(client: httpx.AsyncClient, make_user: UserFactory) -> dict[str, dict[str, Any]]:
    """Five products; two share a price and two share a name, so ties need the id."""
    staff = await make_user(Role.STAFF)
    specs = {
        "lamp": {"name": "Brass lamp", "price": "30.00", "stock": 0},
        "desk": {"name": "Walnut desk", "price": "250.00", "stock": 2},
        "chair": {"name": "Oak chair", "price": "30.00", "stock": 5},
        "stool": {"name": "Oak chair", "price": "12.00", "stock": 1},
        "shelf": {"name": "Pine shelf", "price": "80.00", "stock": 0, "description": "walnut trim"},
    }
    return {key: await create_product(client, staff, **spec) for key, spec in specs.items()}


def by_id(product: dict[str, Any]) -> str:
    return str(product["id"])


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("newest", lambda p: (p["created_at"], p["id"])),
        ("price_asc", lambda p: (float(p["price"]), p["id"])),
        ("name", lambda p: (p["name"], p["id"])),
    ],
)
async def test_every_sort_walks_every_product_once_in_order(
    client: httpx.AsyncClient, shelf: dict[str, dict[str, Any]], sort: str, order: Any
) -> None:
    items = await walk_with(client, sort=sort)

    expected = sorted(shelf.values(), key=order, reverse=sort == "newest")
    assert ids(items) == ids(expected)


async def test_price_descending_breaks_ties_by_id_descending(
    client: httpx.AsyncClient, shelf: dict[str, dict[str, Any]]
) -> None:
    items = await walk_with(client, sort="price_desc")

    expected = sorted(shelf.values(), key=lambda p: (float(p["price"]), p["id"]), reverse=True)
    assert ids(items) == ids(expected)


async def test_a_sorted_cursor_keeps_its_place_when_products_are_added(
    client: httpx.AsyncClient, make_user: UserFactory, shelf: dict[str, dict[str, Any]]
) -> None:
    staff = await make_user(Role.STAFF)
    first = await page(client, sort="price_asc", limit=2)

    await create_product(client, staff, name="Cheap", price="1.00")  # sorts before the cursor
    rest = await walk_with(client, sort="price_asc", cursor=first["next_cursor"])

    assert ids(first["items"]) == [
        shelf["stool"]["id"],
        min(shelf["lamp"]["id"], shelf["chair"]["id"]),
    ]
    assert "Cheap" not in [item["name"] for item in rest]
    assert len(first["items"]) + len(rest) == 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"in_stock": "true"}, {"desk", "chair", "stool"}),
        ({"in_stock": "false"}, {"lamp", "shelf"}),
        ({"min_price": "30"}, {"lamp", "desk", "chair", "shelf"}),
        ({"max_price": "30.00"}, {"lamp", "chair", "stool"}),
        ({"min_price": "30", "max_price": "80"}, {"lamp", "chair", "shelf"}),
        ({"q": "walnut"}, {"desk", "shelf"}),
        ({"q": "chairs"}, {"chair", "stool"}),  # stemmed: chairs finds chair
        ({"q": "walnut -desk"}, {"shelf"}),
        ({"q": "brass OR pine"}, {"lamp", "shelf"}),
        ({"q": "nothing-like-this"}, set()),
        ({"q": "the"}, set()),  # only a stop word: matches nothing, is no error
        ({"q": "walnut", "in_stock": "true"}, {"desk"}),
    ],
)
async def test_filters_and_search(
    client: httpx.AsyncClient,
    shelf: dict[str, dict[str, Any]],
    params: dict[str, str],
    expected: set[str],
) -> None:
    items = await walk_with(client, **params)

    assert sorted(ids(items)) == sorted(shelf[key]["id"] for key in expected)


async def test_search_finds_a_sku(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    wanted = await create_product(client, staff, sku="GEAR-V60")
    await create_product(client, staff, sku="OTHER-1")

    assert ids(await walk_with(client, q="GEAR-V60")) == [wanted["id"]]


async def test_category_filter_includes_subcategories(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)

    async def category(name: str, parent: str | None = None) -> str:
        response = await client.post(
            CATEGORIES, json={"name": name, "parent_id": parent}, headers=staff.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    coffee = await category("Coffee")
    beans = await category("Beans", coffee)
    books = await category("Books")
    in_coffee = await create_product(client, staff, category_id=coffee)
    in_beans = await create_product(client, staff, category_id=beans)
    await create_product(client, staff, category_id=books)
    await create_product(client, staff)

    assert sorted(ids(await walk_with(client, category_id=coffee))) == sorted(
        [in_coffee["id"], in_beans["id"]]
    )
    assert ids(await walk_with(client, category_id=beans)) == [in_beans["id"]]
    assert await walk_with(client, category_id=str(uuid4())) == []


async def test_a_cursor_of_another_sort_is_a_400(
    client: httpx.AsyncClient, shelf: dict[str, dict[str, Any]]
) -> None:
    first = await page(client, sort="price_asc", limit=2)

    response = await client.get(PRODUCTS, params={"sort": "name", "cursor": first["next_cursor"]})

    body = assert_problem(response, 400, "invalid-cursor")
    assert "sort=price_asc" in body["detail"]


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("price_asc", "1e999999"),
        ("price_asc", "NaN"),
        ("price_asc", "-1.00"),
        ("price_desc", "12.5"),
        ("price_asc", 12.5),
        ("name", "a\x00b"),
        ("name", "n" * 201),
        ("name", None),
        ("newest", "2024-01-01T00:00:00"),
    ],
)
async def test_a_forged_sort_key_is_a_400(
    client: httpx.AsyncClient, shelf: dict[str, dict[str, Any]], sort: str, key: object
) -> None:
    cursor = forged_cursor({"sort": sort, "key": key, "id": str(uuid4())})

    response = await client.get(PRODUCTS, params={"sort": sort, "cursor": cursor})

    assert_problem(response, 400, "invalid-cursor")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "cheapest"}, "query.sort"),
        ({"min_price": "0"}, "query.min_price"),
        ({"min_price": "abc"}, "query.min_price"),
        ({"max_price": "1.001"}, "query.max_price"),
        ({"max_price": "1e20"}, "query.max_price"),
        ({"in_stock": "maybe"}, "query.in_stock"),
        ({"category_id": "desks"}, "query.category_id"),
        ({"q": ""}, "query.q"),
        ({"q": "   "}, "query.q"),
        ({"q": "x" * 201}, "query.q"),
        ({"q": "a\x00b"}, "query.q"),
    ],
)
async def test_invalid_listing_parameters_are_a_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get(PRODUCTS, params=params)

    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == {field}


async def test_min_price_above_max_price_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get(PRODUCTS, params={"min_price": "10", "max_price": "5"})

    assert_problem(response, 422, "invalid-price-range")


async def test_long_non_ascii_names_still_page_by_name(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    created = [await create_product(client, staff, name=letter * 200) for letter in "ŻÆ€"]

    items = await walk_with(client, sort="name")

    # Two per page: the walk crossed two name-carrying cursors; the order is the collation's.
    assert sorted(ids(items)) == sorted(ids(created))
    assert len(items) == 3
