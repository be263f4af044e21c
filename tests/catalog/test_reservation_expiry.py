"""Reservations nobody settled expire: their stock goes back on sale, announced through the outbox,
never twice and never for a reservation that was committed or released; an order paid after its
reservation expired takes the stock again or sells nothing. Stock always adds up."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.config import Settings
from app.modules.catalog.schemas import ProductCreate
from app.modules.catalog.service import ReservationExpiry, StockService
from app.modules.catalog.settings import CatalogSettings
from tests.conftest import eventually, running_worker
from tests.databases import operator_database
from tests.helpers import held_or_sold, outbox_events, stock_of


async def new_product(app: FastAPI, stock: int) -> UUID:
    products = app.state.runtime.module("catalog").container.products()
    product = await products.create_product(
        ProductCreate(
            sku=f"HOLD-{uuid4().hex[:8]}",
            name="Brass lamp",
            price=Decimal("19.00"),
            currency="EUR",
            stock=stock,
        )
    )
    return UUID(str(product.id))


def stock_service(app: FastAPI) -> StockService:
    service: StockService = app.state.runtime.module("catalog").container.stock()
    return service


def expiry(app: FastAPI) -> ReservationExpiry:
    service: ReservationExpiry = app.state.runtime.module("catalog").container.expiry()
    return service


async def reserve(app: FastAPI, order_id: UUID, *lines: tuple[UUID, int]) -> None:
    async with app.state.runtime.module("catalog").uow.begin() as tx:
        await stock_service(app).reserve_for_order(tx, order_id, list(lines))


async def commit(app: FastAPI, order_id: UUID) -> None:
    async with app.state.runtime.module("catalog").uow.begin() as tx:
        await stock_service(app).commit_for_order(tx, order_id)


async def release(app: FastAPI, order_id: UUID) -> None:
    async with app.state.runtime.module("catalog").uow.begin() as tx:
        await stock_service(app).release_for_order(tx, order_id)


async def sql(app: FastAPI, statement: str, **params: Any) -> Any:
    async with operator_database(app.state.runtime).session() as session:
        return (await session.execute(text(statement), params)).all()


async def held_past_ttl(app: FastAPI, *order_ids: UUID) -> None:
    """These reservations were made a day ago: well past RESERVATION_TTL_S."""
    await sql(
        app,
        "UPDATE catalog.reservations SET created_at = now() - interval '1 day' "
        "WHERE order_id = ANY(:ids) RETURNING order_id",
        ids=list(order_ids),
    )


async def status_of(app: FastAPI, order_id: UUID) -> str:
    rows = await sql(
        app, "SELECT status FROM catalog.reservations WHERE order_id = :id", id=order_id
    )
    status: str = rows[0].status
    return status


async def units(app: FastAPI, product_id: UUID) -> int:
    rows = await sql(app, "SELECT stock FROM catalog.products WHERE id = :id", id=product_id)
    stock: int = rows[0].stock
    return stock


async def test_an_overdue_reservation_gives_its_stock_back_and_says_so(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    lamp = await new_product(app, stock=5)
    order_id = uuid4()
    await reserve(app, order_id, (lamp, 2))
    assert await stock_of(client, str(lamp)) == 3  # now cached as 3
    await held_past_ttl(app, order_id)

    assert await expiry(app).expire_overdue() == 1

    assert await status_of(app, order_id) == "expired"
    assert await units(app, lamp) == 5
    expired = await outbox_events(app, "catalog.StockReservationExpired")
    assert [event["order_id"] for event in expired] == [str(order_id)]
    changes = await outbox_events(app, "catalog.StockChanged")
    assert {key: changes[-1][key] for key in ("product_id", "available", "cause", "order_id")} == {
        "product_id": str(lamp),
        "available": 5,
        "cause": "expired",
        "order_id": str(order_id),
    }

    async def readers_see_it() -> bool:  # StockChanged dropped the cached product
        return await stock_of(client, str(lamp)) == 5

    await eventually(readers_see_it)


async def test_committed_released_rejected_and_fresh_reservations_never_expire(
    app: FastAPI,
) -> None:
    lamp = await new_product(app, stock=6)
    committed, released, rejected, fresh = uuid4(), uuid4(), uuid4(), uuid4()
    await reserve(app, committed, (lamp, 2))
    await commit(app, committed)
    await reserve(app, released, (lamp, 1))
    await release(app, released)
    await reserve(app, fresh, (lamp, 3))
    await reserve(app, rejected, (lamp, 5))  # 1 left: not enough
    await held_past_ttl(app, committed, released, rejected)

    assert await expiry(app).expire_overdue() == 0

    statuses = [await status_of(app, o) for o in (committed, released, rejected, fresh)]
    assert statuses == ["committed", "released", "rejected", "reserved"]
    assert await units(app, lamp) == 1
    assert await outbox_events(app, "catalog.StockReservationExpired") == []


async def test_a_backlog_is_expired_batch_by_batch_until_none_is_left(app: FastAPI) -> None:
    lamp = await new_product(app, stock=20)
    orders = [uuid4() for _ in range(7)]
    for order_id in orders:
        await reserve(app, order_id, (lamp, 2))
    await held_past_ttl(app, *orders)
    small = ReservationExpiry(
        app.state.runtime.module("catalog").uow,
        ttl_s=app.state.runtime.settings.module(CatalogSettings).reservation_ttl_s,
        batch_size=3,
    )

    assert await small.expire_overdue() == 7

    assert [await status_of(app, o) for o in orders] == ["expired"] * 7
    assert await units(app, lamp) == 20
    assert await small.expire_overdue() == 0


async def test_a_paid_order_takes_its_expired_stock_again_while_it_is_there(app: FastAPI) -> None:
    lamp = await new_product(app, stock=5)
    order_id = uuid4()
    await reserve(app, order_id, (lamp, 2))
    await held_past_ttl(app, order_id)
    await expiry(app).expire_overdue()

    await commit(app, order_id)  # OrderConfirmed, late

    assert await status_of(app, order_id) == "committed"
    assert await units(app, lamp) == 3
    assert (await outbox_events(app, "catalog.StockChanged"))[-1]["cause"] == "retaken"
    assert await outbox_events(app, "catalog.StockCommitFailed") == []


async def test_a_paid_order_whose_expired_stock_is_gone_sells_nothing(app: FastAPI) -> None:
    desk, lamp = sorted([await new_product(app, stock=2), await new_product(app, stock=2)])
    late, other = uuid4(), uuid4()
    await reserve(app, late, (desk, 2), (lamp, 2))
    await held_past_ttl(app, late)
    await expiry(app).expire_overdue()
    # Another order takes the lamps (the second line, so the desks are really taken, then
    # given back, when the late commit fails).
    await reserve(app, other, (lamp, 2))

    await commit(app, late)
    await release(app, late)  # orders cancels it: nothing more is given back

    assert await status_of(app, late) == "expired"
    assert (await units(app, desk), await units(app, lamp)) == (2, 0)
    failed = await outbox_events(app, "catalog.StockCommitFailed")
    assert [(e["order_id"], e["reason"], e["product_ids"]) for e in failed] == [
        (str(late), "out_of_stock", [str(lamp)])
    ]
    for product in (desk, lamp):
        assert await units(app, product) + await held_or_sold(app, str(product)) == 2


async def test_an_archived_product_is_not_taken_again(app: FastAPI) -> None:
    lamp = await new_product(app, stock=3)
    order_id = uuid4()
    await reserve(app, order_id, (lamp, 1))
    await held_past_ttl(app, order_id)
    await expiry(app).expire_overdue()
    await app.state.runtime.module("catalog").container.products().archive_product(lamp)

    await commit(app, order_id)

    assert await status_of(app, order_id) == "expired"
    failed = await outbox_events(app, "catalog.StockCommitFailed")
    assert [(e["reason"], e["product_ids"]) for e in failed] == [("unavailable", [str(lamp)])]


async def test_expiry_racing_commits_releases_and_reservations_keeps_stock_adding_up(
    app: FastAPI,
) -> None:
    initial = 60
    products = [await new_product(app, stock=initial) for _ in range(3)]
    rng = random.Random(5)

    def lines() -> list[tuple[UUID, int]]:
        return [(p, rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 3))]

    old = {uuid4(): lines() for _ in range(24)}
    for order_id, order_lines in old.items():
        await reserve(app, order_id, *order_lines)
    await held_past_ttl(app, *old)
    ids = list(old)
    racers = [
        expiry(app).expire_overdue(),
        expiry(app).expire_overdue(),
        *(commit(app, o) for o in ids[0::3]),
        *(release(app, o) for o in ids[1::3]),
        *(reserve(app, uuid4(), *lines()) for _ in range(10)),
        expiry(app).expire_overdue(),
    ]
    rng.shuffle(racers)

    await asyncio.gather(*racers)  # a deadlock or a constraint violation fails the test

    for product in products:
        assert await units(app, product) + await held_or_sold(app, str(product)) == initial
    expired = {str(o) for o in ids if await status_of(app, o) == "expired"}
    announced = [e["order_id"] for e in await outbox_events(app, "catalog.StockReservationExpired")]
    assert len(announced) == len(set(announced))  # no reservation expired twice
    assert expired <= set(announced) <= {str(o) for o in ids}  # some were retaken since
    assert {await status_of(app, o) for o in ids[2::3]} == {"expired"}


async def test_the_cron_expires_reservations_in_a_real_worker(
    app: FastAPI, settings: Settings
) -> None:
    lamp = await new_product(app, stock=4)
    order_id = uuid4()
    await reserve(app, order_id, (lamp, 4))
    await held_past_ttl(app, order_id)

    async with running_worker(settings):

        async def expired() -> bool:
            return await status_of(app, order_id) == "expired"

        await eventually(expired)

    assert await units(app, lamp) == 4
    assert len(await outbox_events(app, "catalog.StockReservationExpired")) == 1
