from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.catalog.models import Category, Product, Reservation, ReservationLine


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, product_id: UUID) -> Product | None:
        return await self._session.get(Product, product_id)

    async def by_sku(self, sku: str) -> Product | None:
        query = select(Product).where(Product.sku == sku)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def by_ids(self, product_ids: Sequence[UUID]) -> list[Product]:
        query = select(Product).where(Product.id.in_(product_ids))
        return list((await self._session.execute(query)).scalars())

    async def newest_first(self, limit: int, after: tuple[datetime, UUID] | None) -> list[Product]:
        query = select(Product).order_by(Product.created_at.desc(), Product.id.desc()).limit(limit)
        if after is not None:
            query = query.where(tuple_(Product.created_at, Product.id) < tuple_(*after))
        return list((await self._session.execute(query)).scalars())

    async def add(self, product: Product) -> None:
        self._session.add(product)
        await self._session.flush()


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, category_id: UUID) -> Category | None:
        return await self._session.get(Category, category_id)

    async def by_name(self, name: str) -> Category | None:
        query = select(Category).where(Category.name == name)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def all(self) -> list[Category]:
        return list(
            (await self._session.execute(select(Category).order_by(Category.name))).scalars()
        )

    async def add(self, category: Category) -> None:
        self._session.add(category)
        await self._session.flush()


class StockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take(self, product_id: UUID, quantity: int) -> bool:
        """Atomically take `quantity` units if that many are on hand. Concurrent takers of the
        same row queue on its lock and re-check the condition, so stock never goes negative."""
        result = await self._session.execute(
            update(Product)
            .where(Product.id == product_id, Product.stock >= quantity)
            .values(stock=Product.stock - quantity)
            .returning(Product.id)
        )
        return result.scalar_one_or_none() is not None

    async def put_back(self, product_id: UUID, quantity: int) -> None:
        await self._session.execute(
            update(Product).where(Product.id == product_id).values(stock=Product.stock + quantity)
        )

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

    async def record(
        self, order_id: UUID, status: str, lines: Sequence[tuple[UUID, int]] = ()
    ) -> None:
        self._session.add(Reservation(order_id=order_id, status=status))
        await self._session.flush()
        self._session.add_all(
            ReservationLine(order_id=order_id, product_id=product_id, quantity=quantity)
            for product_id, quantity in lines
        )
        await self._session.flush()
