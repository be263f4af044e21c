from __future__ import annotations

from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from app.core.events.base import IntegrationEvent


class OrderedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: int


class OrderPlaced(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderPlaced"
    # A consumer following an order (a mirror of its status elsewhere) gets its OrderPlaced,
    # then each status change, in the order raised.
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID
    customer_id: UUID
    items: list[OrderedItem]
    total: Decimal
    currency: str


class OrderStatusChanged(IntegrationEvent):
    """Every transition of every order; `version` counts them, so a reader can ignore one that
    arrives after a later one."""

    event_type: ClassVar[str] = "orders.OrderStatusChanged"
    # After the order's OrderPlaced and earlier status changes: see OrderPlaced.
    ordered_by: ClassVar[str | None] = "order_id"

    order_id: UUID
    customer_id: UUID
    status: str
    cause: str
    version: int


class OrderPaid(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderPaid"

    order_id: UUID


class OrderPaymentFailed(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderPaymentFailed"

    order_id: UUID
    reason: str


class OrderConfirmed(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderConfirmed"

    order_id: UUID


class OrderRejected(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderRejected"

    order_id: UUID
    reason: str


class OrderCancelled(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderCancelled"

    order_id: UUID
    reason: str


class OrderShipped(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderShipped"

    order_id: UUID


class OrderRefunded(IntegrationEvent):
    event_type: ClassVar[str] = "orders.OrderRefunded"

    order_id: UUID
