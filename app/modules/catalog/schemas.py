from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.validation import PG_INT_MAX, InputModel, LongText, Name

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code, e.g. EUR")
]
_CENT = Decimal("0.01")
# Product ids one internal snapshot call may name (app/modules/catalog/internal.py).
MAX_SNAPSHOT_IDS = 100


def _in_cents(price: Decimal) -> Decimal:
    """Prices are stored with two decimals ("12.5" as 12.50): the response says so too."""
    return price.quantize(_CENT)


Price = Annotated[
    Decimal,
    Field(
        gt=0, max_digits=12, decimal_places=2, description="Decimal amount, serialised as a string"
    ),
    AfterValidator(_in_cents),
]
Stock = Annotated[int, Field(strict=True, ge=0, le=PG_INT_MAX)]


class ProductSort(StrEnum):
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    NAME = "name"


class ProductCreate(InputModel):
    sku: Sku
    name: Name
    description: LongText = ""
    price: Price
    currency: Currency
    stock: Stock = 0
    category_id: UUID | None = None


class ProductUpdate(InputModel):
    """Only the fields sent change; `category_id: null` takes the product out of its category.
    Stock is set with `PUT /products/{id}/stock`."""

    sku: Sku | None = None
    name: Name | None = None
    description: LongText | None = None
    price: Price | None = None
    currency: Currency | None = None
    category_id: UUID | None = None

    @field_validator("sku", "name", "description", "price", "currency")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> ProductUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


class StockUpdate(InputModel):
    on_hand: Stock = Field(description="Units physically on hand, reserved ones included")


class StockOut(BaseModel):
    product_id: UUID
    on_hand: int
    reserved: int
    available: int


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    stock: int
    category_id: UUID | None
    created_at: datetime


class ProductPageOut(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


class CategoryCreate(InputModel):
    name: Name
    parent_id: UUID | None = None


class CategoryUpdate(InputModel):
    """Only the fields sent change; `parent_id: null` makes it a top-level category."""

    name: Name | None = None
    parent_id: UUID | None = None

    @field_validator("name")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> CategoryUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    parent_id: UUID | None
