from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Select, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database
from app.modules.catalog.models import (
    SCHEMA,
    SEARCH_CONFIG,
    Category,
    Product,
    Reservation,
    ReservationLine,
)
from app.modules.catalog.schemas import ProductSort

# What the public sees of a product: selected as plain columns, not ORM objects, because these
# reads are the hottest path of the service.
PUBLIC_COLUMNS = (
    Product.id,
    Product.sku,
    Product.name,
    Product.description,
    Product.price,
    Product.currency,
    Product.stock,
    Product.category_id,
    Product.created_at,
)
AnySelect: TypeAlias = Select[*tuple[Any, ...]]
SORT_KEYS: dict[ProductSort, tuple[Any, bool]] = {
    ProductSort.NEWEST: (Product.created_at, True),
    ProductSort.PRICE_ASC: (Product.price, False),
    ProductSort.PRICE_DESC: (Product.price, True),
    ProductSort.NAME: (Product.name, False),
}


@dataclass(frozen=True)
class Listing:
    """Which public products, in which order, after which position."""

    sort: ProductSort = ProductSort.NEWEST
    category_id: UUID | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    q: str | None = None
    after: tuple[Any, UUID] | None = None


def _is_public() -> ColumnElement[bool]:
    return Product.archived_at.is_(None)


def _filtered(query: AnySelect, listing: Listing) -> AnySelect:
    query = query.where(_is_public())
    if listing.category_id is not None:
        in_tree = select(Category.id).where(
            or_(Category.id == listing.category_id, Category.parent_id == listing.category_id)
        )
        query = query.where(Product.category_id.in_(in_tree))
    if listing.min_price is not None:
        query = query.where(Product.price >= listing.min_price)
    if listing.max_price is not None:
        query = query.where(Product.price <= listing.max_price)
    if listing.in_stock is not None:
        query = query.where(Product.stock > 0 if listing.in_stock else Product.stock == 0)
    if listing.q is not None:
        query = query.where(
            Product.search.bool_op("@@")(func.websearch_to_tsquery(SEARCH_CONFIG, listing.q))
        )
    return query


def _ordered(query: AnySelect, listing: Listing, limit: int) -> AnySelect:
    key, descending = SORT_KEYS[listing.sort]
    if listing.after is not None:
        position = tuple_(key, Product.id)
        after = tuple_(*listing.after)
        query = query.where(position < after if descending else position > after)
    if descending:
        return query.order_by(key.desc(), Product.id.desc()).limit(limit)
    return query.order_by(key.asc(), Product.id.asc()).limit(limit)


# The read by id runs on the driver itself: SQLAlchemy would wrap this one-row SELECT in
# BEGIN/ROLLBACK and rebuild the statement per call, several times the cost of the query.
_PUBLIC_BY_ID = (
    f"SELECT {', '.join(column.key for column in PUBLIC_COLUMNS)} "  # noqa: S608 - our columns
    f"FROM {SCHEMA}.{Product.__tablename__} WHERE id = $1 AND archived_at IS NULL"
)


# What an order takes of a product (a ProductSnapshot, field for field), for a checkout and
# for naming what an old order bought: one statement on the driver too, not whole products.
_SNAPSHOTS = (
    "SELECT id AS product_id, sku, name, price AS unit_price, currency, "  # noqa: S608 - ours
    "archived_at IS NOT NULL AS archived, stock AS available "
    f"FROM {SCHEMA}.{Product.__tablename__} WHERE id = ANY($1::uuid[])"
)
_ORDERABLE_SNAPSHOTS = f"{_SNAPSHOTS} AND archived_at IS NULL"


class ProductReader:
    """Public reads outside any transaction: no session, no identity map, no ORM objects."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def public(self, product_id: UUID) -> dict[str, Any] | None:
        return await self._database.read_row(_PUBLIC_BY_ID, product_id)

    async def snapshots(
        self, product_ids: Sequence[UUID], *, orderable_only: bool
    ) -> list[dict[str, Any]]:
        query = _ORDERABLE_SNAPSHOTS if orderable_only else _SNAPSHOTS
        return await self._database.fetch(query, list(product_ids))

    async def page(self, listing: Listing, limit: int) -> Sequence[Row[*tuple[Any, ...]]]:
        query = _ordered(_filtered(select(*PUBLIC_COLUMNS), listing), listing, limit)
        async with self._database.engine.connect() as connection:
            return (await connection.execute(query)).all()


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, product_id: UUID) -> Product | None:
        return await self._session.get(Product, product_id)

    async def get_public_for_update(self, product_id: UUID) -> Product | None:
        query = select(Product).where(Product.id == product_id, _is_public()).with_for_update()
        return (await self._session.execute(query)).scalar_one_or_none()

    async def by_sku(self, sku: str) -> Product | None:
        query = select(Product).where(Product.sku == sku)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def add(self, product: Product) -> None:
        self._session.add(product)
        await self._session.flush()

    async def flush(self) -> None:
        await self._session.flush()


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, category_id: UUID) -> Category | None:
        return await self._session.get(Category, category_id)

    async def get_for_update(self, category_id: UUID) -> Category | None:
        return await self._session.get(Category, category_id, with_for_update=True)

    async def by_name(self, name: str) -> Category | None:
        query = select(Category).where(Category.name == name)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def all(self) -> list[Category]:
        return list(
            (await self._session.execute(select(Category).order_by(Category.name))).scalars()
        )

    async def children(self, category_id: UUID) -> int:
        query = select(func.count()).where(Category.parent_id == category_id)
        return int(await self._session.scalar(query) or 0)

    async def products_in(self, category_id: UUID) -> int:
        """Every product filed under it, archived ones included (they still reference it)."""
        query = select(func.count()).where(Product.category_id == category_id)
        return int(await self._session.scalar(query) or 0)

    async def add(self, category: Category) -> None:
        self._session.add(category)
        await self._session.flush()

    async def flush(self) -> None:
        await self._session.flush()

    async def delete(self, category: Category) -> None:
        await self._session.delete(category)
        await self._session.flush()


class StockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take(self, product_id: UUID, quantity: int) -> int | None:
        """Atomically take `quantity` units of a public product if that many are on hand; the
        units left, or None. Concurrent takers of the same row queue on its lock and re-check
        the condition, so stock never goes negative."""
        result = await self._session.execute(
            update(Product)
            .where(Product.id == product_id, Product.stock >= quantity, _is_public())
            .values(stock=Product.stock - quantity)
            .returning(Product.stock)
        )
        return result.scalar_one_or_none()

    async def put_back(self, product_id: UUID, quantity: int) -> int:
        result = await self._session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + quantity)
            .returning(Product.stock)
        )
        return int(result.scalar_one())

    async def is_archived(self, product_id: UUID) -> bool:
        query = select(Product.archived_at.is_not(None)).where(Product.id == product_id)
        return bool(await self._session.scalar(query))

    async def reserved(self, product_id: UUID) -> int:
        """Units of this product held by open reservations."""
        query = (
            select(func.coalesce(func.sum(ReservationLine.quantity), 0))
            .join(Reservation, Reservation.order_id == ReservationLine.order_id)
            .where(ReservationLine.product_id == product_id, Reservation.status == "reserved")
        )
        return int(await self._session.scalar(query) or 0)

    async def reservation(self, order_id: UUID) -> Reservation | None:
        return await self._session.get(Reservation, order_id, with_for_update=True)

    async def reservation_lines(self, order_id: UUID) -> list[ReservationLine]:
        # Product order, as in reservation: concurrent takers and givers lock rows alike.
        query = (
            select(ReservationLine)
            .where(ReservationLine.order_id == order_id)
            .order_by(ReservationLine.product_id)
        )
        return list((await self._session.execute(query)).scalars())

    async def overdue(self, held_for: timedelta, limit: int) -> list[Reservation]:
        """Up to `limit` reservations still open `held_for` after they were made, oldest first,
        locked. Rows another transaction holds (a release or commit under way) are skipped,
        not waited for: that transaction settles them, or the next sweep takes them."""
        query = (
            select(Reservation)
            .where(
                Reservation.status == "reserved",
                Reservation.created_at < func.now() - held_for,
            )
            .order_by(Reservation.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(query)).scalars())

    async def lines_of(self, order_ids: Sequence[UUID]) -> list[ReservationLine]:
        """The lines of several reservations in product order, the order every stock writer
        locks product rows in."""
        query = (
            select(ReservationLine)
            .where(ReservationLine.order_id.in_(order_ids))
            .order_by(ReservationLine.product_id, ReservationLine.order_id)
        )
        return list((await self._session.execute(query)).scalars())

    async def record(
        self, order_id: UUID, status: str, lines: Sequence[tuple[UUID, int]] = ()
    ) -> None:
        # One flush: the unit of work inserts the reservation before its lines (foreign key).
        self._session.add(Reservation(order_id=order_id, status=status))
        self._session.add_all(
            ReservationLine(order_id=order_id, product_id=product_id, quantity=quantity)
            for product_id, quantity in lines
        )
        await self._session.flush()

    async def reject(self, order_id: UUID) -> None:
        """A reservation recorded before its stock turned out to be short holds nothing."""
        await self._session.execute(
            delete(ReservationLine).where(ReservationLine.order_id == order_id)
        )
        await self._session.execute(
            update(Reservation).where(Reservation.order_id == order_id).values(status="rejected")
        )
