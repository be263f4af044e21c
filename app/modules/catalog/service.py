"""Use cases of the catalog: products, categories, and stock held for orders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.cache import CacheUnavailableError, ResponseCache
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger
from app.core.pagination import InvalidCursorError, decode_cursor, encode_cursor
from app.modules.catalog.contracts import (
    CategoryChanged,
    ProductArchived,
    ProductCreated,
    ProductSnapshot,
    ProductUpdated,
    StockChanged,
    StockCommitFailed,
    StockReleased,
    StockReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from app.modules.catalog.exceptions import (
    CategoryInUseError,
    CategoryNameTakenError,
    CategoryNotFoundError,
    CategoryTooDeepError,
    CursorSortMismatchError,
    InvalidPriceRangeError,
    ProductNotFoundError,
    SkuTakenError,
    StockBelowReservedError,
    UnknownCategoryError,
    UnknownParentCategoryError,
)
from app.modules.catalog.models import Category, Product, Reservation
from app.modules.catalog.repository import (
    SORT_KEYS,
    CategoryRepository,
    Listing,
    ProductReader,
    ProductRepository,
    StockRepository,
)
from app.modules.catalog.schemas import (
    CategoryUpdate,
    ProductCreate,
    ProductOut,
    ProductPageOut,
    ProductSort,
    ProductUpdate,
    StockOut,
)

_CURSOR_KEYS = frozenset({"sort", "key", "id"})
_PRICE_KEY = re.compile(r"^\d{1,10}\.\d{2}$")
_NAME_KEY_MAX = 200
LISTING_KEYS = "catalog:list:*"
# Reservations expired per transaction: a backlog is worked through in short transactions.
EXPIRY_BATCH = 200
_log = get_logger("keystone.catalog")


def product_cache_key(product_id: UUID) -> str:
    return f"catalog:product:{product_id}"


@dataclass(frozen=True)
class CacheTtl:
    product_s: int
    listing_s: int
    http_max_age_s: int


@dataclass(frozen=True)
class ListingRequest:
    """`GET /products` as asked: filters, sort, page size and the cursor, if any."""

    limit: int
    cursor: str | None = None
    sort: ProductSort = ProductSort.NEWEST
    category_id: UUID | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    q: str | None = None

    def cache_key(self) -> str:
        fields = {k: None if v is None else str(v) for k, v in self.__dict__.items()}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        return f"catalog:list:{digest[:32]}"


def _cursor_key_text(sort: ProductSort, row: Any) -> str:
    value = getattr(row, SORT_KEYS[sort][0].key)
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _parse_cursor_key(sort: ProductSort, text: object) -> Any:
    if not isinstance(text, str):
        raise InvalidCursorError
    if sort is ProductSort.NEWEST:
        created_at = datetime.fromisoformat(text)
        # Issued cursors always carry an offset. Normalising to UTC here also refuses
        # instants Postgres cannot bind (year 9999 at -14:00 overflows) with a 400.
        if created_at.tzinfo is None:
            raise InvalidCursorError
        return created_at.astimezone(UTC)
    if sort in (ProductSort.PRICE_ASC, ProductSort.PRICE_DESC):
        if not _PRICE_KEY.match(text):
            raise InvalidCursorError
        return Decimal(text)
    if len(text) > _NAME_KEY_MAX or "\x00" in text:
        raise InvalidCursorError
    return text


def _position(cursor: str, sort: ProductSort) -> tuple[Any, UUID]:
    position = decode_cursor(cursor, _CURSOR_KEYS)
    if position["sort"] != sort.value:
        raise CursorSortMismatchError(str(position["sort"])[:20], sort.value)
    try:
        return _parse_cursor_key(sort, position["key"]), UUID(position["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCursorError from exc


def _listing(request: ListingRequest) -> Listing:
    if (
        request.min_price is not None
        and request.max_price is not None
        and request.min_price > request.max_price
    ):
        raise InvalidPriceRangeError
    after = _position(request.cursor, request.sort) if request.cursor is not None else None
    return Listing(
        sort=request.sort,
        category_id=request.category_id,
        min_price=request.min_price,
        max_price=request.max_price,
        in_stock=request.in_stock,
        q=request.q,
        after=after,
    )


def _snapshot(product: Product) -> ProductSnapshot:
    return ProductSnapshot(
        product_id=product.id,
        sku=product.sku,
        name=product.name,
        unit_price=product.price,
        currency=product.currency,
        archived=product.archived_at is not None,
    )


def _change_text(value: object) -> str | None:
    return None if value is None else str(value)


class ProductService:
    def __init__(self, uow: UnitOfWork, cache: ResponseCache, ttl: CacheTtl) -> None:
        self._uow = uow
        self._cache = cache
        self._ttl = ttl
        self.cache_control = f"public, max-age={ttl.http_max_age_s}, must-revalidate"

    # --- public reads: serialised once, served from the cache --------------------------------

    async def product_json(self, product_id: UUID) -> bytes:
        """The public JSON of one product, from the cache when it is there."""

        async def load() -> bytes | None:
            row = await ProductReader(self._uow.database).public(product_id)
            return (
                None if row is None else ProductOut.model_validate(row).model_dump_json().encode()
            )

        body = await self._cache.get_or_compute(
            product_cache_key(product_id), self._ttl.product_s, load
        )
        if body is None:
            raise ProductNotFoundError
        return body

    async def page_json(self, request: ListingRequest) -> bytes:
        """One page of public products as JSON; first pages come from the cache."""
        listing = _listing(request)

        async def load() -> bytes:
            rows = await ProductReader(self._uow.database).page(listing, request.limit + 1)
            items, more = rows[: request.limit], len(rows) > request.limit
            next_cursor = None
            if more:
                last = items[-1]
                next_cursor = encode_cursor(
                    {
                        "sort": request.sort.value,
                        "key": _cursor_key_text(request.sort, last),
                        "id": str(last.id),
                    }
                )
            page = ProductPageOut(
                items=[ProductOut.model_validate(row) for row in items], next_cursor=next_cursor
            )
            return page.model_dump_json().encode()

        if request.cursor is not None:
            return await load()
        body = await self._cache.get_or_compute(request.cache_key(), self._ttl.listing_s, load)
        assert body is not None  # load() always returns a page
        return body

    # --- writes --------------------------------------------------------------------------------

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
                tx.publish(
                    ProductCreated(
                        product_id=product.id,
                        sku=product.sku,
                        name=product.name,
                        price=product.price,
                        currency=product.currency,
                        category_id=product.category_id,
                    )
                )
        except IntegrityError as exc:  # a concurrent create with the same SKU won the race
            raise SkuTakenError(data.sku) from exc
        await self._forget_now(None)
        return product

    async def update_product(self, product_id: UUID, data: ProductUpdate) -> Product:
        fields = data.model_dump(exclude_unset=True)
        try:
            async with self._uow.begin() as tx:
                products = ProductRepository(tx.session)
                product = await products.get_public_for_update(product_id)
                if product is None:
                    raise ProductNotFoundError
                await self._check_update(tx, product, fields)
                changes = {
                    name: _change_text(value)
                    for name, value in fields.items()
                    if getattr(product, name) != value
                }
                for name, value in fields.items():
                    setattr(product, name, value)
                if changes:
                    await products.flush()
                    tx.publish(ProductUpdated(product_id=product.id, changes=changes))
        except IntegrityError as exc:  # a concurrent write took the SKU first
            raise SkuTakenError(str(fields.get("sku"))) from exc
        await self._forget_now(product_id)
        return product

    @staticmethod
    async def _check_update(tx: Transaction, product: Product, fields: dict[str, Any]) -> None:
        sku = fields.get("sku")
        if sku not in (None, product.sku) and await ProductRepository(tx.session).by_sku(sku):
            raise SkuTakenError(str(sku))
        category_id = fields.get("category_id")
        if category_id is not None and not await CategoryRepository(tx.session).get(category_id):
            raise UnknownCategoryError

    async def archive_product(self, product_id: UUID) -> None:
        async with self._uow.begin() as tx:
            product = await ProductRepository(tx.session).get_public_for_update(product_id)
            if product is None:
                raise ProductNotFoundError
            product.archived_at = datetime.now(UTC)
            tx.publish(ProductArchived(product_id=product.id))
        await self._forget_now(product_id)

    async def set_stock(self, product_id: UUID, on_hand: int, changed_by: UUID) -> StockOut:
        """Staff counted `on_hand` units; what open reservations hold stays held."""
        async with self._uow.begin() as tx:
            # The row lock queues this behind (or ahead of) any reservation touching the
            # product, so `reserved` below is exact when we write.
            product = await ProductRepository(tx.session).get_public_for_update(product_id)
            if product is None:
                raise ProductNotFoundError
            reserved = await StockRepository(tx.session).reserved(product_id)
            if on_hand < reserved:
                raise StockBelowReservedError(reserved)
            available = on_hand - reserved
            if product.stock != available:
                product.stock = available
                tx.publish(
                    StockChanged(
                        product_id=product_id,
                        available=available,
                        cause="set",
                        changed_by=changed_by,
                    )
                )
        await self._forget_now(product_id)
        return StockOut(
            product_id=product_id, on_hand=on_hand, reserved=reserved, available=available
        )

    async def forget_cached(self, product_id: UUID | None) -> None:
        """Drop what the cache holds about a product (and every cached listing)."""
        keys = () if product_id is None else (product_cache_key(product_id),)
        await self._cache.invalidate(*keys, patterns=(LISTING_KEYS,))

    async def _forget_now(self, product_id: UUID | None) -> None:
        """Right after commit, so the writer reads its own write. Best effort: the event the
        write published invalidates again (and is retried) wherever the relay delivers it."""
        with contextlib.suppress(CacheUnavailableError):
            await self.forget_cached(product_id)

    # --- for other modules (CatalogFacade) and the seed ----------------------------------------

    async def find_by_sku(self, sku: str) -> Product | None:
        async with self._uow.begin() as tx:
            return await ProductRepository(tx.session).by_sku(sku)

    async def products_for_order(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        async with self._uow.begin() as tx:
            products = await ProductRepository(tx.session).by_ids(product_ids, public_only=True)
        return [_snapshot(p) for p in products]

    async def resolve_products(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        async with self._uow.begin() as tx:
            products = await ProductRepository(tx.session).by_ids(product_ids, public_only=False)
        return [_snapshot(p) for p in products]


class CategoryService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create_category(self, name: str, parent_id: UUID | None = None) -> Category:
        category = Category(name=name, parent_id=parent_id)
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                if await categories.by_name(name) is not None:
                    raise CategoryNameTakenError(name)
                if parent_id is not None:
                    await self._check_parent(categories, parent_id)
                await categories.add(category)
                tx.publish(CategoryChanged(category_id=category.id, change="created"))
        except IntegrityError as exc:
            raise CategoryNameTakenError(name) from exc
        return category

    async def update_category(self, category_id: UUID, data: CategoryUpdate) -> Category:
        fields = data.model_dump(exclude_unset=True)
        name = fields.get("name")
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                category = await categories.get_for_update(category_id)
                if category is None:
                    raise CategoryNotFoundError
                if name not in (None, category.name) and await categories.by_name(name):
                    raise CategoryNameTakenError(str(name))
                parent_id = fields.get("parent_id")
                if parent_id not in (None, category.parent_id):
                    await self._check_move(categories, category, parent_id)
                for field, value in fields.items():
                    setattr(category, field, value)
                await categories.flush()
                tx.publish(CategoryChanged(category_id=category.id, change="updated"))
        except IntegrityError as exc:
            raise CategoryNameTakenError(str(name)) from exc
        return category

    async def delete_category(self, category_id: UUID) -> None:
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                category = await categories.get_for_update(category_id)
                if category is None:
                    raise CategoryNotFoundError
                products = await categories.products_in(category_id)
                children = await categories.children(category_id)
                if products or children:
                    raise CategoryInUseError(products, children)
                await categories.delete(category)
                tx.publish(CategoryChanged(category_id=category_id, change="deleted"))
        except IntegrityError as exc:  # a product or subcategory arrived meanwhile
            raise CategoryInUseError(1, 0) from exc

    @classmethod
    async def _check_move(
        cls, categories: CategoryRepository, category: Category, parent_id: UUID
    ) -> None:
        if parent_id == category.id:
            raise CategoryTooDeepError("A category cannot be its own parent")
        await cls._check_parent(categories, parent_id)
        if await categories.children(category.id):
            raise CategoryTooDeepError("This category has subcategories, so it cannot get a parent")

    @staticmethod
    async def _check_parent(categories: CategoryRepository, parent_id: UUID) -> None:
        parent = await categories.get(parent_id)
        if parent is None:
            raise UnknownParentCategoryError
        if parent.parent_id is not None:
            raise CategoryTooDeepError(
                "The parent is itself a subcategory; categories nest one level deep"
            )

    async def list_categories(self) -> list[Category]:
        async with self._uow.begin() as tx:
            return await CategoryRepository(tx.session).all()


class _ShortageError(Exception):
    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"not enough stock for {product_id}")
        self.product_id = product_id


async def _take_all(
    tx: Transaction, stock: StockRepository, lines: Sequence[tuple[UUID, int]]
) -> dict[UUID, int]:
    """Take every line or none: the units left per product, or `_ShortageError` naming the
    first product short, with whatever was taken before it given back."""
    if len(lines) == 1:  # one statement is all or nothing already: no savepoint round trips
        product_id, quantity = lines[0]
        remaining = await stock.take(product_id, quantity)
        if remaining is None:
            raise _ShortageError(product_id)
        return {product_id: remaining}
    left: dict[UUID, int] = {}
    async with tx.savepoint():
        # A fixed lock order keeps concurrent multi-line takers and givers from deadlocking.
        for product_id, quantity in sorted(lines):
            remaining = await stock.take(product_id, quantity)
            if remaining is None:
                raise _ShortageError(product_id)
            left[product_id] = remaining
    return left


async def _shortage_reason(stock: StockRepository, shortage: _ShortageError) -> str:
    return "unavailable" if await stock.is_archived(shortage.product_id) else "out_of_stock"


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
        # Recorded before the stock is taken: a product row, hot during a sale, then stays
        # locked only from the take to the commit, not across these inserts as well.
        await stock.record(order_id, "reserved", lines)
        try:
            left = await _take_all(tx, stock, lines)
        except _ShortageError as shortage:
            await stock.reject(order_id)
            tx.publish(
                StockReservationFailed(
                    order_id=order_id,
                    reason=await _shortage_reason(stock, shortage),
                    product_ids=[shortage.product_id],
                )
            )
            return
        for product_id, available in left.items():
            tx.publish(
                StockChanged(
                    product_id=product_id, available=available, cause="reserved", order_id=order_id
                )
            )
        tx.publish(StockReserved(order_id=order_id))

    async def release_for_order(self, tx: Transaction, order_id: UUID) -> None:
        stock = StockRepository(tx.session)
        reservation = await stock.reservation(order_id)
        if reservation is None:
            await stock.record(order_id, "released")
            return
        # Committed stock is still on the shelf until the order ships, so a cancelled
        # confirmed order gives it back too. Expired stock was given back already.
        if reservation.status not in ("reserved", "committed"):
            return
        for line in await stock.reservation_lines(order_id):
            available = await stock.put_back(line.product_id, line.quantity)
            tx.publish(
                StockChanged(
                    product_id=line.product_id,
                    available=available,
                    cause="released",
                    order_id=order_id,
                )
            )
        reservation.status = "released"
        tx.publish(StockReleased(order_id=order_id))

    async def commit_for_order(self, tx: Transaction, order_id: UUID) -> None:
        """The order is paid for: its reserved stock is sold. The stock count already excludes
        it; the reservation stops being releasable by expiry or a failed payment.

        The order may have been paid after its reservation expired (orders was down, or the
        capture was retried past RESERVATION_TTL_S): the stock is on sale again and may be gone.
        Then it is taken again, every line or none, under the same row locks as any reservation;
        if it is not all there, nothing is sold and `StockCommitFailed` makes orders cancel and
        refund the order. So stock is never sold twice, and a paid order ends confirmed with its
        stock or refunded."""
        stock = StockRepository(tx.session)
        reservation = await stock.reservation(order_id)
        if reservation is None:
            return
        if reservation.status == "reserved":
            reservation.status = "committed"
        elif reservation.status == "expired":
            await self._retake(tx, stock, reservation)

    @staticmethod
    async def _retake(tx: Transaction, stock: StockRepository, reservation: Reservation) -> None:
        order_id = reservation.order_id
        lines = [
            (line.product_id, line.quantity) for line in await stock.reservation_lines(order_id)
        ]
        try:
            left = await _take_all(tx, stock, lines)
        except _ShortageError as shortage:
            tx.publish(
                StockCommitFailed(
                    order_id=order_id,
                    reason=await _shortage_reason(stock, shortage),
                    product_ids=[shortage.product_id],
                )
            )
            _log.warning("expired stock not there for a paid order", order_id=str(order_id))
            return
        reservation.status = "committed"
        for product_id, available in left.items():
            tx.publish(
                StockChanged(
                    product_id=product_id, available=available, cause="retaken", order_id=order_id
                )
            )
        _log.info("expired stock taken again for a paid order", order_id=str(order_id))


class ReservationExpiry:
    """Gives back stock held for orders nobody settled within RESERVATION_TTL_S: the safety net
    for when orders never answers (its process down, lifted out and unreachable). Orders expires
    its own unanswered orders sooner (ORDER_PENDING_TIMEOUT_S, which the TTL must exceed), so in
    a healthy system this finds nothing.

    Each batch is one transaction: the overdue reservations are locked with SKIP LOCKED (a
    release or commit holding one is left to finish), their lines are put back in product order
    (the lock order of every stock writer, so no deadlock), and each reservation turns
    `expired` with `StockReservationExpired` and the `StockChanged` events in the outbox.
    Orders cancels an order still waiting for payment; a payment that lands anyway is handled
    when the order is confirmed (`StockService.commit_for_order`)."""

    def __init__(self, uow: UnitOfWork, ttl_s: int, batch_size: int = EXPIRY_BATCH) -> None:
        self._uow = uow
        self._ttl = timedelta(seconds=ttl_s)
        self._batch_size = batch_size

    async def expire_overdue(self) -> int:
        """Expire every overdue reservation, a batch at a time; how many were expired."""
        expired = 0
        while True:
            batch = await self._expire_batch()
            expired += batch
            if batch < self._batch_size:
                return expired

    async def _expire_batch(self) -> int:
        async with self._uow.begin() as tx:
            stock = StockRepository(tx.session)
            overdue = await stock.overdue(self._ttl, self._batch_size)
            for line in await stock.lines_of([r.order_id for r in overdue]):
                available = await stock.put_back(line.product_id, line.quantity)
                tx.publish(
                    StockChanged(
                        product_id=line.product_id,
                        available=available,
                        cause="expired",
                        order_id=line.order_id,
                    )
                )
            for reservation in overdue:
                reservation.status = "expired"
                tx.publish(
                    StockReservationExpired(
                        order_id=reservation.order_id, reserved_at=reservation.created_at
                    )
                )
        if overdue:
            _log.info("reservations expired", orders=[str(r.order_id) for r in overdue])
        return len(overdue)
