"""Events between the three services over Redis Streams: a checkout placed on the orders
service is confirmed (the catalog reserves the stock on OrderPlaced, the orders worker takes the
payment), a catalog that was down catches up on the cancellations it missed, a group made by the
release step gets what was published before its module first ran, and a poison entry ends in the
dead-letter stream, where `python -m app.cli dead-letters` shows it. A consumer process killed
with entries in hand, and the other faults, are in test_split_faults.py.

The orders service needs the catalog to place an order (prices), so what the catalog misses
while down are cancellations: OrderCancelled puts the stock back."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
from redis.asyncio import Redis

from app.core.events.streams import stream_of, trim_acknowledged
from app.core.security.rbac import Role
from tests.conftest import eventually
from tests.faults.conftest import ROOT
from tests.helpers import ORDERS, PRODUCTS, order_body
from tests.split.conftest import Split, account
from tests.split.test_split_services import keyed, new_product
from tests.topology import Person, Service

ORDERS_STREAM = stream_of("orders")


async def place(split: Split, customer: Person, product: dict[str, Any], quantity: int) -> str:
    async with split.client("orders") as orders:
        body = order_body((str(product["id"]), quantity))
        response = await orders.post(ORDERS, json=body, headers=keyed(customer))
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id


async def settled(split: Split, customer: Person, order_id: str) -> dict[str, Any]:
    """The order once its saga is over, read from the orders service."""
    latest: dict[str, Any] = {}

    async def over() -> bool:
        async with split.client("orders") as orders:
            response = await orders.get(f"{ORDERS}/{order_id}", headers=customer.headers)
        assert response.status_code == 200, response.text
        latest.update(response.json())
        return latest["status"] in ("confirmed", "rejected", "payment_failed", "cancelled")

    await eventually(over, timeout_s=60, interval_s=0.3)
    return latest


async def stock(split: Split, product: dict[str, Any]) -> int:
    async with split.client("catalog") as catalog:
        response = await catalog.get(f"{PRODUCTS}/{product['id']}")
    assert response.status_code == 200, response.text
    level: int = response.json()["stock"]
    return level


async def cli(service: Service, command: str) -> list[str]:
    """`python -m app.cli <command>` with the service's settings; its stdout lines."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "app.cli", command),
        cwd=ROOT,
        env={**service.env, "LOG_LEVEL": "ERROR"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


def redis(split: Split) -> Redis:
    return split.runtime.core.redis()


async def test_a_checkout_on_the_orders_service_is_confirmed(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-e1@example.com", Role.STAFF)
    customer = await account(split, "customer-e1@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, stock=5)

    order = await settled(split, customer, await place(split, customer, product, 2))

    assert [(c["status"], c["cause"]) for c in order["history"]] == [
        ("pending", "placed"),
        ("stock_reserved", "stock reserved"),
        ("paid", "payment authorised"),
        ("confirmed", "payment captured"),
    ]
    await eventually(lambda: _equals(stock(split, product), 3), timeout_s=30)


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def confirmed_order(
    split: Split, customer: Person, product: dict[str, Any], quantity: int
) -> str:
    order_id = await place(split, customer, product, quantity)
    assert (await settled(split, customer, order_id))["status"] == "confirmed"
    return order_id


async def cancel(split: Split, customer: Person, order_id: str) -> None:
    """The customer cancels on the orders service: OrderCancelled is published on orders'
    stream, and the catalog puts the stock back when it reads it."""
    async with split.client("orders") as orders:
        response = await orders.post(f"{ORDERS}/{order_id}/cancel", headers=customer.headers)
    assert response.status_code == 200, response.text


async def unread_by_catalog(split: Split) -> bool:
    """Orders' stream holds entries the catalog's group has not read yet."""
    groups = await redis(split).xinfo_groups(ORDERS_STREAM)
    (group,) = [group for group in groups if group["name"] == b"catalog"]
    (last,) = await redis(split).xrevrange(ORDERS_STREAM, count=1)
    return bool(group["last-delivered-id"] != last[0])


async def test_a_catalog_that_was_down_catches_up_with_nothing_lost(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-e2@example.com", Role.STAFF)
    customer = await account(split, "customer-e2@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, stock=10)
    order_ids = [await confirmed_order(split, customer, product, 1) for _ in range(3)]
    await eventually(lambda: _equals(stock(split, product), 7), timeout_s=30)

    services["catalog"].stop()
    for order_id in order_ids:
        await cancel(split, customer, order_id)
    assert await unread_by_catalog(split)

    services["catalog"].start()
    services["catalog"].ready()
    await eventually(lambda: _equals(stock(split, product), 10), timeout_s=30)


async def test_a_group_made_at_release_gets_what_came_before_its_first_start(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-e3@example.com", Role.STAFF)
    customer = await account(split, "customer-e3@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, stock=4)
    order_id = await confirmed_order(split, customer, product, 1)
    # The catalog as a subscriber deployed for the first time: no group of its own, until the
    # release step (`python -m app.cli migrate` with the catalog's settings) makes it, at 0.
    services["catalog"].stop()
    for stream in (ORDERS_STREAM, stream_of("catalog")):
        await redis(split).xgroup_destroy(stream, "catalog")
    await cli(services["catalog"], "migrate")

    await cancel(split, customer, order_id)
    # Trimming what the groups have acknowledged keeps what the new group has not read.
    await trim_acknowledged(redis(split), ORDERS_STREAM)
    assert await unread_by_catalog(split)

    services["catalog"].start()
    services["catalog"].ready()
    # Back to 4 exactly: the group read the stream from 0, and the inbox skipped what the
    # catalog had handled before (the reservation, the commit) instead of doing it twice.
    await eventually(lambda: _equals(stock(split, product), 4), timeout_s=30)


async def test_a_poison_entry_ends_in_the_dead_letter_stream_and_the_cli_lists_it(
    split: Split, services: dict[str, Service]
) -> None:
    poison = {
        "event_id": "not-a-uuid",
        "event_type": "orders.OrderPlaced",
        "event_version": "1",
        "payload": json.dumps({"order_id": "nonsense"}),
    }
    entry_id = (await redis(split).xadd(ORDERS_STREAM, poison)).decode()  # type: ignore[arg-type]

    async def dead_lettered() -> bool:
        return bool(await redis(split).xlen("keystone:dead-letters:catalog"))

    await eventually(dead_lettered, timeout_s=60, interval_s=0.5)
    printed = [json.loads(line) for line in (await cli(services["catalog"], "dead-letters"))]
    (letter,) = [line for line in printed if line.get("entry_id") == entry_id]
    assert letter["source"] == "stream"
    assert (letter["module"], letter["stream"], letter["attempts"]) == (
        "catalog",
        ORDERS_STREAM,
        3,
    )
    assert letter["last_error"].startswith("invalid orders.OrderPlaced v1")
    # Meanwhile the services kept working.
    async with httpx.AsyncClient(base_url=services["catalog"].url) as catalog:
        assert (await catalog.get("/readyz")).status_code == 200
