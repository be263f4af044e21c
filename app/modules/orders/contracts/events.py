"""The integration events orders publishes.

Every status change is announced twice, in the transaction that makes it (`change_status` in
app/modules/orders/service/transitions.py): first `OrderStatusChanged`, then the event of the
status reached: `OrderPaid`, `OrderConfirmed`, `OrderShipped`, `OrderRejected`,
`OrderPaymentFailed`, `OrderCancelled` or `OrderRefunded`. Reaching `stock_reserved` has no
event of its own (only orders acts on it), and an order begins with `OrderPlaced`.

Which one a new consumer subscribes to:
- It acts on one kind of change (the catalog releases stock on `OrderCancelled` and
  `OrderPaymentFailed` and sells it on `OrderConfirmed`): subscribe to that event. It receives
  only what it acts on, with the fields that change has (`reason`), and a status added later
  does not reach it.
- It follows every order through its whole life (a mirror of order statuses in another
  service, a timeline, a feed): subscribe to `OrderStatusChanged`, one handler for every
  status. It carries
  `customer_id`, and `version`, the number of changes so far, so a change arriving after a
  later one can be ignored; with `OrderPlaced` it is delivered in the order raised per order
  (`ordered_by`), which the specific events are not.
Both exist because neither serves both kinds of consumer: the specific events alone would make
a follower subscribe to seven events and rebuild the order and the sequence itself; the general
one alone would make every single-purpose consumer filter a status string out of every change of
every order, and tie it to the status names.
"""

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
