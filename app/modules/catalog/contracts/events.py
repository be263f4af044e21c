from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from app.core.events.base import IntegrationEvent


class StockReserved(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.StockReserved"

    order_id: UUID


class StockReservationFailed(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.StockReservationFailed"

    order_id: UUID
    reason: str
    product_ids: list[UUID]


class StockReleased(IntegrationEvent):
    event_type: ClassVar[str] = "catalog.StockReleased"

    order_id: UUID
