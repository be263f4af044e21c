from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core.validation import PG_INT_MAX, InputModel, LongText, Name

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code, e.g. EUR")
]
_CENT = Decimal("0.01")


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


class ProductCreate(InputModel):
    sku: Sku
    name: Name
    description: LongText = ""
    price: Price
    currency: Currency
    stock: Stock = 0
    category_id: UUID | None = None


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


class CategoryCreate(InputModel):
    name: Name


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
