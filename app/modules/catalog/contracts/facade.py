from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class ProductSnapshot(BaseModel):
    """A product as an order sees it at the moment of ordering."""

    model_config = ConfigDict(frozen=True)

    product_id: UUID
    sku: str
    name: str
    unit_price: Decimal
    currency: str
    archived: bool = False
    # Units still on sale when read (None from a catalog that does not say): a hint a checkout
    # may refuse early on; only the reservation that follows `OrderPlaced` decides.
    available: int | None = None


class CatalogFacade(Protocol):
    """The synchronous calls other modules may make into the catalog. In-process it is the
    catalog's own service; split into services, an HTTP client implements the same Protocol."""

    async def products_for_order(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        """The orderable products among `product_ids`; unknown and archived ids are absent
        (an archived product cannot be ordered)."""
        ...

    async def resolve_products(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        """Every product among `product_ids`, archived ones included (`archived=True`), so
        an old order can still name what it bought; unknown ids are absent."""
        ...
