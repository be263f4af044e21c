"""What a checkout asks for, and the order it makes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from app.core.events.outbox import Transaction
from app.core.logging import get_logger
from app.modules.catalog.contracts import CatalogFacade, ProductSnapshot
from app.modules.orders.exceptions import (
    IdempotencyKeyReusedError,
    MixedCurrenciesError,
    OrderTotalTooLargeError,
    OutOfStockError,
    UnknownProductsError,
)
from app.modules.orders.models import Order, OrderLine, OrderStatus, StatusChange
from app.modules.orders.repository import IdempotencyKeyRepository, OrderRepository

# orders.total is NUMERIC(14, 2): fifty lines of a hundred units at the highest product price
# add up to more, which Postgres would refuse with a 500.
MAX_TOTAL = Decimal(10) ** 12
_log = get_logger("keystone.orders")


@dataclass(frozen=True)
class Checkout:
    """One `POST /orders`: who, with which idempotency key, and what they asked for."""

    customer_id: UUID
    idempotency_key: str
    items: Sequence[tuple[UUID, int]]
    shipping_address: dict[str, Any]
    payment_method: str

    @property
    def request_hash(self) -> str:
        body = {
            "items": [[str(product), quantity] for product, quantity in self.items],
            "shipping_address": self.shipping_address,
            "payment_method": self.payment_method,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    replayed: bool


async def replayed_order(tx: Transaction, checkout: Checkout) -> PlacedOrder:
    """The order a live idempotency key already made; refused for another request."""
    seen = await IdempotencyKeyRepository(tx.session).live(
        checkout.customer_id, checkout.idempotency_key
    )
    assert seen is not None  # claimed by a committed transaction, and not yet expired
    if seen.request_hash != checkout.request_hash:
        raise IdempotencyKeyReusedError
    order = await OrderRepository(tx.session).get(seen.order_id)
    assert order is not None  # the key and its order commit together
    _log.info("checkout replayed", order_id=str(order.id))
    return PlacedOrder(order, replayed=True)


async def priced_order(catalog: CatalogFacade, checkout: Checkout, *, check_stock: bool) -> Order:
    """A new pending order, priced from the catalog's products as they are now. With
    `check_stock`, a quantity above what the catalog has on sale is refused now rather than by
    the reservation after the order exists (the reservation still decides: stock may go
    between this read and it)."""
    quantities = dict(checkout.items)
    snapshots = {p.product_id: p for p in await catalog.products_for_order(list(quantities))}
    missing = [product_id for product_id in quantities if product_id not in snapshots]
    if missing:
        raise UnknownProductsError(missing)
    if check_stock:
        short = [pid for pid, qty in quantities.items() if qty > _on_sale(snapshots[pid])]
        if short:
            raise OutOfStockError(short)
    currencies = {snapshot.currency for snapshot in snapshots.values()}
    if len(currencies) != 1:
        raise MixedCurrenciesError
    total = sum((snapshots[pid].unit_price * qty for pid, qty in quantities.items()), Decimal(0))
    if total >= MAX_TOTAL:
        raise OrderTotalTooLargeError(MAX_TOTAL)
    return Order(
        id=uuid4(),
        customer_id=checkout.customer_id,
        status=OrderStatus.PENDING,
        currency=currencies.pop(),
        total=total,
        shipping_address=checkout.shipping_address,
        payment_method=checkout.payment_method,
        lines=[
            OrderLine(
                position=position,
                product_id=pid,
                sku=snapshots[pid].sku,
                name=snapshots[pid].name,
                unit_price=snapshots[pid].unit_price,
                quantity=qty,
            )
            for position, (pid, qty) in enumerate(quantities.items())
        ],
        history=[StatusChange(status=OrderStatus.PENDING, cause="placed")],
    )


def _on_sale(snapshot: ProductSnapshot) -> float:
    # A catalog that does not say (an older one, over HTTP) refuses nothing early.
    return math.inf if snapshot.available is None else snapshot.available
