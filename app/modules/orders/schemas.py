from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from app.core.validation import JSON_INTEGER, InputModel, Name

MAX_LINES = 50


def _iso_country(code: str) -> str:
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, e.g. DE or FR")
    return code


COUNTRY_CODES = sorted(country.alpha_2 for country in pycountry.countries)
Country = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_iso_country),
    WithJsonSchema(
        {"type": "string", "enum": COUNTRY_CODES, "description": "ISO 3166-1 alpha-2, e.g. DE"}
    ),
]
PostalCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,15}$")
]
OptionalLine = Annotated[Name | None, Field(default=None)]
# A provider's token for a card or wallet, never a card number: pm_card_visa, pm_1Nx...
PaymentMethod = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,100}$")]


class ShippingAddress(InputModel):
    name: Name
    line1: Name
    line2: OptionalLine
    postal_code: PostalCode
    city: Name
    country: Country


class OrderItemIn(InputModel):
    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=100), JSON_INTEGER]


class PlaceOrderRequest(InputModel):
    items: Annotated[
        list[OrderItemIn],
        Field(
            min_length=1,
            max_length=MAX_LINES,
            description="One line per product: a product_id named twice is a 422 "
            "duplicate-order-lines problem",
        ),
    ]
    shipping_address: ShippingAddress
    payment_method: PaymentMethod


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


class ShippingAddressOut(BaseModel):
    name: str
    line1: str
    line2: str | None
    postal_code: str
    city: str
    country: str


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    customer_id: UUID
    status: str
    total: Decimal
    currency: str
    created_at: datetime
    # None once the customer was erased: the order keeps its amounts, not where it went.
    shipping_address: ShippingAddressOut | None
    lines: list[OrderLineOut]
    history: list[StatusChangeOut]

    @field_validator("shipping_address", mode="before")
    @classmethod
    def _erased_is_none(cls, address: dict[str, Any]) -> dict[str, Any] | None:
        return address or None


class OrderSummaryOut(BaseModel):
    """One row of an order list, read from the projection."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID = Field(validation_alias="order_id")
    customer_id: UUID
    status: str
    total: Decimal
    currency: str
    item_count: int
    placed_at: datetime
    updated_at: datetime
