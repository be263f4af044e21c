from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from app.core.validation import (
    JSON_INTEGER,
    NEVER_NULL,
    PG_INT_MAX,
    ChangeRequest,
    InputModel,
    LongText,
    Name,
)

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code, e.g. EUR")
]
_CENT = Decimal("0.01")
# Product ids one internal snapshot call may name (app/modules/catalog/internal.py).
MAX_SNAPSHOT_IDS = 100


# An amount as text: up to ten digits, up to two decimals, more than zero ("12.5", "0.99").
PRICE_PATTERN = r"^(?!0*(?:\.0{1,2})?$)[0-9]{1,10}(?:\.[0-9]{1,2})?$"
_PRICE_TEXT = re.compile(PRICE_PATTERN)
PRICE_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": PRICE_PATTERN, "maxLength": 13}
_PRICE_NUMBER_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 9_999_999_999.99,
    "multipleOf": 0.01,
}


def _price_text(value: object) -> object:
    # Decimal() would also read "1e2", " 7", "+7" and "1_000": the documented form only.
    if isinstance(value, str) and not _PRICE_TEXT.match(value):
        raise ValueError("must be an amount like 12.50: up to 10 digits, up to 2 decimals, > 0")
    if isinstance(value, bool):
        raise ValueError("must be an amount like 12.50")
    return value


def _in_cents(price: Decimal) -> Decimal:
    """Prices are stored with two decimals ("12.5" as 12.50): the response says so too."""
    return price.quantize(_CENT)


Price = Annotated[
    Decimal,
    BeforeValidator(_price_text),
    Field(gt=0, max_digits=12, decimal_places=2),
    AfterValidator(_in_cents),
    WithJsonSchema(
        {
            "anyOf": [PRICE_TEXT_SCHEMA, _PRICE_NUMBER_SCHEMA],
            "description": 'Amount, as a string ("12.50", preferred) or a JSON number with at '
            "most two decimals; answered as a string with two decimals",
        }
    ),
]
# A price in a query string: the text form only.
PriceText = Annotated[Decimal, BeforeValidator(_price_text), WithJsonSchema(PRICE_TEXT_SCHEMA)]
Stock = Annotated[int, Field(ge=0, le=PG_INT_MAX), JSON_INTEGER]


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


class ProductUpdate(ChangeRequest):
    """Only the fields sent change; `category_id: null` takes the product out of its category.
    Stock is set with `PUT /products/{id}/stock`."""

    # Absent means unchanged; null is refused, and not documented.
    sku: Annotated[Sku | None, NEVER_NULL] = None
    name: Annotated[Name | None, NEVER_NULL] = None
    description: Annotated[LongText | None, NEVER_NULL] = None
    price: Annotated[Price | None, NEVER_NULL] = None
    currency: Annotated[Currency | None, NEVER_NULL] = None
    category_id: UUID | None = None

    @field_validator("sku", "name", "description", "price", "currency")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


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


class CategoryUpdate(ChangeRequest):
    """Only the fields sent change; `parent_id: null` makes it a top-level category."""

    name: Annotated[Name | None, NEVER_NULL] = None
    parent_id: UUID | None = None

    @field_validator("name")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    parent_id: UUID | None
