"""The order state machine: which status may follow which, and the one way to move."""

from __future__ import annotations

from app.core.events.outbox import Transaction
from app.modules.orders.contracts import OrderCancelled, OrderStatusChanged
from app.modules.orders.exceptions import IllegalTransitionError
from app.modules.orders.models import Order, OrderStatus, StatusChange
from app.modules.orders.repository import OrderEmailRepository, OrderSummaryRepository
from app.modules.orders.service.job_requests import enqueue_order_email, enqueue_refund

S = OrderStatus
# The order state machine, in one place: which status may follow which.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.STOCK_RESERVED, S.REJECTED, S.CANCELLED}),
    S.STOCK_RESERVED: frozenset({S.PAID, S.PAYMENT_FAILED, S.CANCELLED}),
    S.PAID: frozenset({S.CONFIRMED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset(),
    S.REJECTED: frozenset(),
    # The money held or taken for a cancelled or failed order is given back.
    S.PAYMENT_FAILED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
}
# The statuses the customer is told about by email (app/modules/orders/emails.py).
EMAILED_STATUSES = frozenset({S.CONFIRMED, S.PAYMENT_FAILED, S.REFUNDED})
AWAITING_PAYMENT = (S.PENDING, S.STOCK_RESERVED)
RESERVATION_EXPIRED = "reservation expired"


async def move(tx: Transaction, order: Order, target: OrderStatus, cause: str) -> None:
    """The only way an order changes status: checked against TRANSITIONS, recorded with its
    cause and time, written to the order list's summary, announced (`OrderStatusChanged`), and
    for EMAILED_STATUSES an email to the customer owed in the same transaction."""
    if target not in TRANSITIONS[OrderStatus(order.status)]:
        raise IllegalTransitionError(order.status, target)
    order.status = target
    order.history.append(StatusChange(status=target, cause=cause[:200]))
    tx.publish(
        OrderStatusChanged(
            order_id=order.id,
            customer_id=order.customer_id,
            status=target,
            cause=cause[:200],
            version=len(order.history),
        )
    )
    await OrderSummaryRepository(tx.session).save(order)
    if target in EMAILED_STATUSES:
        OrderEmailRepository(tx.session).request(order.id, target)
        enqueue_order_email(tx, order.id, target)


async def cancel_and_refund(tx: Transaction, order: Order, cause: str) -> None:
    """Cancel and compensate: the catalog releases what it holds on `OrderCancelled`, and the
    refund job gives back any money held or taken."""
    await move(tx, order, S.CANCELLED, cause)
    tx.publish(OrderCancelled(order_id=order.id, reason=cause))
    if order.may_hold_money:
        enqueue_refund(tx, order.id)
