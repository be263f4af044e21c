"""Use cases of the catalog: products, categories, and stock held for orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.events.outbox import Transaction, UnitOfWork
from app.core.pagination import InvalidCursorError, decode_cursor, encode_cursor
from app.modules.catalog.contracts import (
    ProductSnapshot,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from app.modules.catalog.exceptions import (
    CategoryNameTakenError,
    ProductNotFoundError,
    SkuTakenError,
    UnknownCategoryError,
)
from app.modules.catalog.models import Category, Product
from app.modules.catalog.repository import CategoryRepository, ProductRepository, StockRepository
from app.modules.catalog.schemas import ProductCreate

_CURSOR_KEYS = frozenset({"created_at", "id"})


@dataclass(frozen=True)
class ProductPage:
    """One page of ORM products; the router turns it into the public `Page[ProductOut]`.
    (A pydantic `Page[Product]` cannot exist: `Product` is not a pydantic type.)"""

    items: list[Product]
    next_cursor: str | None


class ProductService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create_product(self, data: ProductCreate) -> Product:
        product = Product(**data.model_dump())
        try:
            async with self._uow.begin() as tx:
                products = ProductRepository(tx.session)
                if await products.by_sku(data.sku) is not None:
                    raise SkuTakenError(data.sku)
                if data.category_id and not await CategoryRepository(tx.session).get(
                    data.category_id
                ):
                    raise UnknownCategoryError
                await products.add(product)
        except IntegrityError as exc:  # a concurrent create with the same SKU won the race
            raise SkuTakenError(data.sku) from exc
        return product

    async def get_product(self, product_id: UUID) -> Product:
        async with self._uow.begin() as tx:
            product = await ProductRepository(tx.session).get(product_id)
        if product is None:
            raise ProductNotFoundError
        return product

    async def find_by_sku(self, sku: str) -> Product | None:
        async with self._uow.begin() as tx:
            return await ProductRepository(tx.session).by_sku(sku)

    async def list_products(self, limit: int, cursor: str | None) -> ProductPage:
        after = None
        if cursor is not None:
            position = decode_cursor(cursor, _CURSOR_KEYS)
            try:
                created_at = datetime.fromisoformat(position["created_at"])
                # Issued cursors always carry an offset. Normalising to UTC here also refuses
                # instants Postgres cannot bind (year 9999 at -14:00 overflows) with a 400.
                if created_at.tzinfo is None:
                    raise InvalidCursorError
                after = (created_at.astimezone(UTC), UUID(position["id"]))
            except (TypeError, ValueError, AttributeError, OverflowError) as exc:
                raise InvalidCursorError from exc
        async with self._uow.begin() as tx:
            rows = await ProductRepository(tx.session).newest_first(limit + 1, after)
        items, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = items[-1]
            next_cursor = encode_cursor(
                {"created_at": last.created_at.isoformat(), "id": str(last.id)}
            )
        return ProductPage(items=items, next_cursor=next_cursor)

    async def products_for_order(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        async with self._uow.begin() as tx:
            products = await ProductRepository(tx.session).by_ids(product_ids)
        return [
            ProductSnapshot(
                product_id=p.id, sku=p.sku, name=p.name, unit_price=p.price, currency=p.currency
            )
            for p in products
        ]


class CategoryService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create_category(self, name: str) -> Category:
        category = Category(name=name)
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                if await categories.by_name(name) is not None:
                    raise CategoryNameTakenError(name)
                await categories.add(category)
        except IntegrityError as exc:
            raise CategoryNameTakenError(name) from exc
        return category

    async def list_categories(self) -> list[Category]:
        async with self._uow.begin() as tx:
            return await CategoryRepository(tx.session).all()


class _OutOfStockError(Exception):
    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"not enough stock for {product_id}")
        self.product_id = product_id


class StockService:
    """Holds stock for orders. Each call runs inside the caller's transaction (an event
    handler's), so the stock change, the reservation record and the event it emits commit
    together with the inbox entry that makes redelivery harmless."""

    async def reserve_for_order(
        self, tx: Transaction, order_id: UUID, lines: Sequence[tuple[UUID, int]]
    ) -> None:
        stock = StockRepository(tx.session)
        if await stock.reservation(order_id) is not None:
            return
        try:
            async with tx.savepoint():
                # A fixed lock order keeps concurrent multi-line reservations from deadlocking.
                for product_id, quantity in sorted(lines):
                    if not await stock.take(product_id, quantity):
                        raise _OutOfStockError(product_id)
        except _OutOfStockError as shortage:
            await stock.record(order_id, "rejected")
            tx.publish(
                StockReservationFailed(
                    order_id=order_id, reason="out_of_stock", product_ids=[shortage.product_id]
                )
            )
            return
        await stock.record(order_id, "reserved", lines)
        tx.publish(StockReserved(order_id=order_id))

    async def release_for_order(self, tx: Transaction, order_id: UUID) -> None:
        stock = StockRepository(tx.session)
        reservation = await stock.reservation(order_id)
        if reservation is None:
            await stock.record(order_id, "released")
            return
        # Committed stock is still on the shelf until the order ships, so a cancelled
        # confirmed order gives it back too.
        if reservation.status not in ("reserved", "committed"):
            return
        for line in await stock.reservation_lines(order_id):
            await stock.put_back(line.product_id, line.quantity)
        reservation.status = "released"
        tx.publish(StockReleased(order_id=order_id))

    async def commit_for_order(self, tx: Transaction, order_id: UUID) -> None:
        """The order is paid for: its reserved stock is sold. The stock count already excludes
        it; the reservation stops being releasable by expiry or a failed payment."""
        reservation = await StockRepository(tx.session).reservation(order_id)
        if reservation is not None and reservation.status == "reserved":
            reservation.status = "committed"
