"""Stock held by orders that then failed is on sale again as soon as its release commits:
a burst of checkouts right after it is not refused as out of stock (issue #10 saw 231 such
refusals while failed orders' releases waited behind the relay)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.conftest import TestUser, eventually
from tests.helpers import create_product, finished, held_or_sold, place_ok, stock_of

UNITS = 6


async def test_stock_of_failed_orders_is_sold_to_the_next_burst(
    app: FastAPI, client: httpx.AsyncClient, staff: TestUser, customer: TestUser
) -> None:
    lamp = await create_product(client, staff, stock=UNITS)
    declined = await asyncio.gather(
        *(
            place_ok(client, customer, (lamp["id"], 1), payment_method="pm_card_chargeDeclined")
            for _ in range(UNITS)
        )
    )
    failed = [await finished(client, customer, order["id"]) for order in declined]
    assert {order["status"] for order in failed} == {"payment_failed"}

    async def released() -> bool:
        return await held_or_sold(app, lamp["id"]) == 0

    await eventually(released)  # the releases have committed: the next burst gets the stock

    burst = await asyncio.gather(
        *(place_ok(client, customer, (lamp["id"], 1)) for _ in range(UNITS))
    )
    outcomes = [await finished(client, customer, order["id"]) for order in burst]
    assert [order["status"] for order in outcomes] == ["confirmed"] * UNITS
    assert await stock_of(client, lamp["id"]) == 0
