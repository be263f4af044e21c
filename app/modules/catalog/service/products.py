"""Products: their public reads (serialised once, served from the cache), their writes, and
what other modules ask of them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.cache import CacheUnavailableError, ResponseCache
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.pagination import keyset_page
from app.modules.catalog.contracts import (
    ProductArchived,
    ProductCreated,
    ProductSnapshot,
    ProductUpdated,
    StockChanged,
)
from app.modules.catalog.exceptions import (
    ProductNotFoundError,
    SkuTakenError,
    StockBelowReservedError,
    UnknownCategoryError,
)
from app.modules.catalog.models import Product
from app.modules.catalog.repository import (
    CategoryRepository,
    ProductReader,
    ProductRepository,
    StockRepository,
)
from app.modules.catalog.schemas import (
    ProductCreate,
    ProductOut,
    ProductPageOut,
    ProductUpdate,
    StockOut,
)
from app.modules.catalog.service.listing import ListingRequest, cursor_position, listing_of

LISTING_KEYS = "catalog:list:*"


def product_cache_key(product_id: UUID) -> str:
    return f"catalog:product:{product_id}"


@dataclass(frozen=True)
class CacheTtl:
    product_s: int
    listing_s: int
    http_max_age_s: int


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
        listing = listing_of(request)

        async def load() -> bytes:
            reader = ProductReader(self._uow.database)
            page = await keyset_page(
                request.limit,
                lambda size: reader.page(listing, size),
                lambda row: cursor_position(request.sort, row),
            )
            body = ProductPageOut(
                items=[ProductOut.model_validate(row) for row in page.items],
                next_cursor=page.next_cursor,
            )
            return body.model_dump_json().encode()

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
        await self._evict_now(None)
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
        await self._evict_now(product_id)
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
        await self._evict_now(product_id)

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
        await self._evict_now(product_id)
        return StockOut(
            product_id=product_id, on_hand=on_hand, reserved=reserved, available=available
        )

    async def evict_cached(self, product_id: UUID | None) -> None:
        """Drop what the cache holds about a product (and every cached listing)."""
        keys = () if product_id is None else (product_cache_key(product_id),)
        await self._cache.invalidate(*keys, patterns=(LISTING_KEYS,))

    async def _evict_now(self, product_id: UUID | None) -> None:
        """Right after commit, so the writer reads its own write. Best effort: the event the
        write published invalidates again (and is retried) wherever the relay delivers it."""
        with contextlib.suppress(CacheUnavailableError):
            await self.evict_cached(product_id)

    # --- for other modules (CatalogFacade) and the seed ----------------------------------------

    async def find_by_sku(self, sku: str) -> Product | None:
        async with self._uow.begin() as tx:
            return await ProductRepository(tx.session).by_sku(sku)

    async def products_for_order(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        return await self._snapshots(product_ids, orderable_only=True)

    async def resolve_products(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        return await self._snapshots(product_ids, orderable_only=False)

    async def _snapshots(
        self, product_ids: Sequence[UUID], *, orderable_only: bool
    ) -> list[ProductSnapshot]:
        """The snapshot's columns in one statement, outside any transaction (a checkout used
        to load whole products in a transaction of their own: three round trips)."""
        if not product_ids:
            return []
        reader = ProductReader(self._uow.database)
        rows = await reader.snapshots(product_ids, orderable_only=orderable_only)
        return [ProductSnapshot.model_validate(row) for row in rows]
