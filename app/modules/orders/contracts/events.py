from __future__ import annotations

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

    order_id: UUID
    customer_id: UUID
    items: list[OrderedItem]


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
