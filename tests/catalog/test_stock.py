"""Stock reservation under real contention: many transactions racing for the last units at once
(not serialised by the relay), each idempotent per order."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

from fastapi import FastAPI
from sqlalchemy import text

from app.modules.catalog.schemas import ProductCreate
from app.modules.catalog.service import StockService
from tests.databases import operator_database


async def _product(app: FastAPI, stock: int) -> UUID:
    products = app.state.runtime.module("catalog").container.products()
    product = await products.create_product(
        ProductCreate(
            sku=f"RACE-{uuid4().hex[:8]}",
            name="Last lamp",
            price=Decimal("9.99"),
            currency="EUR",
            stock=stock,
        )
    )
    return UUID(str(product.id))


async def _reserve(app: FastAPI, order_id: UUID, product_id: UUID, quantity: int) -> None:
    catalog = app.state.runtime.module("catalog")
    stock: StockService = catalog.container.stock()
    async with catalog.uow.begin() as tx:
        await stock.reserve_for_order(tx, order_id, [(product_id, quantity)])


async def _scalar(app: FastAPI, sql: str, **params: object) -> object:
    async with operator_database(app.state.runtime).session() as session:
        return await session.scalar(text(sql), params)


async def test_racing_reservations_take_exactly_what_is_there(app: FastAPI) -> None:
    product_id = await _product(app, stock=3)
    orders = [uuid4() for _ in range(12)]

    await asyncio.gather(*(_reserve(app, order_id, product_id, 1) for order_id in orders))

    assert (
        await _scalar(app, "SELECT stock FROM catalog.products WHERE id = :id", id=product_id) == 0
    )
    reserved = await _scalar(
        app, "SELECT count(*) FROM catalog.reservations WHERE status = 'reserved'"
    )
    rejected = await _scalar(
        app, "SELECT count(*) FROM catalog.reservations WHERE status = 'rejected'"
    )
    assert (reserved, rejected) == (3, 9)


async def test_a_reservation_is_taken_once_per_order(app: FastAPI) -> None:
    product_id = await _product(app, stock=10)
    order_id = uuid4()

    await asyncio.gather(
        *(_reserve(app, order_id, product_id, 2) for _ in range(3)), return_exceptions=True
    )
    await _reserve(app, order_id, product_id, 2)

    assert (
        await _scalar(app, "SELECT stock FROM catalog.products WHERE id = :id", id=product_id) == 8
    )


async def test_release_gives_back_and_a_late_reservation_takes_nothing(app: FastAPI) -> None:
    catalog = app.state.runtime.module("catalog")
    stock: StockService = catalog.container.stock()
    product_id = await _product(app, stock=5)
    reserved, cancelled_early = uuid4(), uuid4()

    await _reserve(app, reserved, product_id, 2)
    async with catalog.uow.begin() as tx:
        await stock.release_for_order(tx, reserved)
        await stock.release_for_order(tx, cancelled_early)  # cancelled before its reservation
    await _reserve(app, cancelled_early, product_id, 4)  # the late OrderPlaced

    assert (
        await _scalar(app, "SELECT stock FROM catalog.products WHERE id = :id", id=product_id) == 5
    )
