from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.validation import InputModel

MAX_LINES = 50


class OrderItemIn(InputModel):
    product_id: UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=100)]


class PlaceOrderRequest(InputModel):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=MAX_LINES)]

    @field_validator("items")
    @classmethod
    def _one_line_per_product(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        ids = [item.product_id for item in items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear once; raise its quantity instead")
        return items


class OrderLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    product_id: UUID
    sku: str
    name: str
    unit_price: Decimal
    quantity: int


class StatusChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    cause: str
    at: datetime


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    status: str
    total: Decimal
    currency: str
    created_at: datetime
    lines: list[OrderLineOut]
    history: list[StatusChangeOut]
