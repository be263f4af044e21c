"""Small helpers shared by the HTTP-level tests."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import uuid4

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from tests.conftest import TestUser, eventually
from tests.databases import operator_database

PROBLEM = "application/problem+json"
PROBLEM_TYPES = "https://keystone.dev/problems/"
PRODUCTS = "/api/v1/catalog/products"
CATEGORIES = "/api/v1/catalog/categories"
ORDERS = "/api/v1/orders"
ME = "/api/v1/users/me"
LOGOUT = "/api/v1/auth/logout"

_skus = itertools.count(1)


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and problem type, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["type"] == PROBLEM_TYPES + code, body
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body["errors"]}


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": f"SKU-{next(_skus):05d}",
        "name": "Walnut desk",
        "price": "12.50",
        "currency": "EUR",
        "stock": 10,
    }
    body.update(overrides)
    return body


async def create_product(
    client: httpx.AsyncClient, writer: TestUser, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(PRODUCTS, json=product_body(**overrides), headers=writer.headers)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


async def get_product(client: httpx.AsyncClient, product_id: str) -> dict[str, Any]:
    response = await client.get(f"{PRODUCTS}/{product_id}")
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()
    return product


async def stock_of(client: httpx.AsyncClient, product_id: str) -> int:
    stock: int = (await get_product(client, product_id))["stock"]
    return stock


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": None,
    "postal_code": "SW1Y 4JH",
    "city": "London",
    "country": "GB",
}
FINAL = frozenset({"confirmed", "shipped", "rejected", "payment_failed", "cancelled", "refunded"})


def keyed(user: TestUser, key: str | None = None) -> dict[str, str]:
    """The user's auth headers plus an Idempotency-Key (a fresh one unless given)."""
    return {**user.headers, "Idempotency-Key": key or str(uuid4())}


def order_body(*lines: tuple[str, int], payment_method: str = "pm_card_visa") -> dict[str, Any]:
    return {
        "items": [
            {"product_id": product_id, "quantity": quantity} for product_id, quantity in lines
        ],
        "shipping_address": ADDRESS,
        "payment_method": payment_method,
    }


async def place(
    client: httpx.AsyncClient,
    user: TestUser,
    *lines: tuple[str, int],
    payment_method: str = "pm_card_visa",
    key: str | None = None,
) -> httpx.Response:
    """POST /orders with a fresh Idempotency-Key unless one is given."""
    body = order_body(*lines, payment_method=payment_method)
    return await client.post(ORDERS, json=body, headers=keyed(user, key))


async def place_ok(
    client: httpx.AsyncClient,
    user: TestUser,
    *lines: tuple[str, int],
    payment_method: str = "pm_card_visa",
) -> dict[str, Any]:
    response = await place(client, user, *lines, payment_method=payment_method)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def read_order(client: httpx.AsyncClient, user: TestUser, order_id: str) -> dict[str, Any]:
    response = await client.get(f"{ORDERS}/{order_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


async def settled(client: httpx.AsyncClient, user: TestUser, order_id: str) -> dict[str, Any]:
    """The order once the catalog has answered: no longer 'pending'."""
    latest: dict[str, Any] = {}

    async def answered() -> bool:
        latest.update(await read_order(client, user, order_id))
        return latest["status"] != "pending"

    await eventually(answered)
    return latest


async def finished(
    client: httpx.AsyncClient, user: TestUser, order_id: str, timeout_s: float = 20
) -> dict[str, Any]:
    """The order once the saga is done with it: confirmed, or failed and compensated."""
    latest: dict[str, Any] = {}

    async def done() -> bool:
        latest.update(await read_order(client, user, order_id))
        return latest["status"] in FINAL

    await eventually(done, timeout_s=timeout_s)
    return latest


def statuses(order: dict[str, Any]) -> list[str]:
    return [change["status"] for change in order["history"]]


async def outbox_events(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the catalog's events of one type, in the order they happened."""
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text(
                "SELECT payload FROM catalog.outbox WHERE event_type = :type ORDER BY occurred_at"
            ),
            {"type": event_type},
        )
        return [dict(row.payload) for row in rows]


async def held_or_sold(app: FastAPI, product_id: str) -> int:
    """Units of a product that reservations hold or have sold: with the stock on sale, what
    the product started with."""
    async with operator_database(app.state.runtime).session() as session:
        units = await session.scalar(
            text(
                "SELECT coalesce(sum(l.quantity), 0) FROM catalog.reservation_lines l "
                "JOIN catalog.reservations r USING (order_id) "
                "WHERE l.product_id = :id AND r.status IN ('reserved', 'committed')"
            ),
            {"id": product_id},
        )
    return int(units or 0)


async def events_delivered(app: FastAPI) -> None:
    """Wait until the relay has delivered every catalog event written so far (so a cache
    invalidation still in flight cannot race what the test does next)."""

    async def drained() -> bool:
        async with operator_database(app.state.runtime).session() as session:
            left = await session.scalar(
                text("SELECT count(*) FROM catalog.outbox WHERE dispatched_at IS NULL")
            )
        return left == 0

    await eventually(drained)


async def mget_calls(redis: Redis) -> int:
    """How many MGETs the Redis server has run (the per-request token deny-list check)."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


async def checked_in_memory(
    client: httpx.AsyncClient, headers: dict[str, str], redis: Redis
) -> bool:
    """A few authenticated requests all succeed and none of them asked Redis for revocations:
    the instance behind `client` answers from its mirror of the deny-list."""
    before = await mget_calls(redis)
    for _ in range(3):
        response = await client.get(ME, headers=headers)
        assert response.status_code == 200, response.text
    return await mget_calls(redis) == before


async def refused_from_memory(
    client: httpx.AsyncClient, refused: list[dict[str, str]], redis: Redis
) -> bool:
    """Each of these tokens is answered 401 and none of the requests asked Redis (MGET). The
    counter is the server's, which other tests' requests move too: retried with `eventually`,
    one quiet window proves the refusals came from the instance's mirror."""
    before = await mget_calls(redis)
    for headers in refused:
        assert_problem(await client.get(ME, headers=headers), 401)
    return await mget_calls(redis) == before


async def answers(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> bool:
    return (await client.get(ME, headers=headers)).status_code == status
