from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from app.core.events.base import IntegrationEvent


class StockReserved(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.StockReserved"
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID


class StockReservationFailed(IntegrationEvent):
    """`reason` is "out_of_stock", or "unavailable" when a product was archived meanwhile."""

    event_type: ClassVar[str] = "catalog.StockReservationFailed"
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID
    reason: str
    product_ids: list[UUID]


class StockReleased(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.StockReleased"
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID


class StockReservationExpired(IntegrationEvent):
    """Nobody confirmed or released the order within RESERVATION_TTL_S of `reserved_at`: its
    stock is back on sale. An order still waiting for payment can no longer count on it."""

    event_type: ClassVar[str] = "catalog.StockReservationExpired"
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID
    reserved_at: datetime


class StockCommitFailed(IntegrationEvent):
    """The order was confirmed after its reservation expired and its stock could not be taken
    again: `reason` is "out_of_stock", or "unavailable" when a product was archived meanwhile.
    Nothing was sold; the order's payment must be given back."""

    event_type: ClassVar[str] = "catalog.StockCommitFailed"
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID
    reason: str
    product_ids: list[UUID]


class ProductCreated(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.ProductCreated"

    product_id: UUID
    sku: str
    name: str
    price: Decimal
    currency: str
    category_id: UUID | None


class ProductUpdated(IntegrationEvent):
    """`changes` holds the new value of every field that changed (prices as strings)."""

    event_type: ClassVar[str] = "catalog.ProductUpdated"

    product_id: UUID
    changes: dict[str, str | None]


class ProductArchived(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.ProductArchived"

    product_id: UUID


class StockChanged(IntegrationEvent):
    """`available` is what can still be ordered; `cause` is "set" (by staff, `changed_by`
    names them), or for `order_id`: "reserved", "released", "expired" (the hold ran out) or
    "retaken" (an expired hold taken again when the order was confirmed)."""

    event_type: ClassVar[str] = "catalog.StockChanged"

    product_id: UUID
    available: int
    cause: str
    changed_by: UUID | None = None
    order_id: UUID | None = None


class CategoryChanged(IntegrationEvent):
    """`change` is "created", "updated" or "deleted"."""

    event_type: ClassVar[str] = "catalog.CategoryChanged"

    category_id: UUID
    change: str
