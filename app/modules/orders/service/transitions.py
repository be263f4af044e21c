"""The order state machine: which status may follow which, and `change_status`, the one way an
order goes from one to the next, with everything a change owes other modules and the customer."""

from __future__ import annotations

from uuid import UUID

from app.core.events.base import IntegrationEvent
from app.core.events.outbox import Transaction
from app.modules.orders.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaid,
    OrderPaymentFailed,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
)
from app.modules.orders.exceptions import IllegalTransitionError
from app.modules.orders.models import Order, OrderStatus, StatusChange
from app.modules.orders.repository import OrderEmailRepository, OrderSummaryRepository
from app.modules.orders.service.job_requests import enqueue_order_email, enqueue_refund

# The order state machine, in one place: which status may follow which.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.STOCK_RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.STOCK_RESERVED: frozenset(
        {OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PAID: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}
    ),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    # The money held or taken for a cancelled or failed order is given back.
    OrderStatus.PAYMENT_FAILED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
}
# The statuses the customer is told about by email (app/modules/orders/emails.py).
EMAILED_STATUSES = frozenset(
    {OrderStatus.CONFIRMED, OrderStatus.PAYMENT_FAILED, OrderStatus.REFUNDED}
)
AWAITING_PAYMENT = (OrderStatus.PENDING, OrderStatus.STOCK_RESERVED)
RESERVATION_EXPIRED = "reservation expired"


async def change_status(tx: Transaction, order: Order, target: OrderStatus, cause: str) -> None:
    """The only way an order changes status: checked against TRANSITIONS, recorded with its
    cause and time, announced (`publish_status_events`), written to the order list's summary,
    and for EMAILED_STATUSES an email to the customer owed (`record_email_owed_and_enqueue_job`),
    all in the caller's transaction."""
    if target not in TRANSITIONS[OrderStatus(order.status)]:
        raise IllegalTransitionError(order.status, target)
    order.status = target
    order.history.append(StatusChange(status=target, cause=cause[:200]))
    publish_status_events(tx, order, cause)
    await OrderSummaryRepository(tx.session).save(order)
    if target in EMAILED_STATUSES:
        record_email_owed_and_enqueue_job(tx, order.id, target)


def publish_status_events(tx: Transaction, order: Order, cause: str) -> None:
    """`OrderStatusChanged` for whoever follows every change, then the event of the status
    reached, for whoever waits for that one (contracts/events.py says which to subscribe to)."""
    tx.publish(
        OrderStatusChanged(
            order_id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            cause=cause[:200],
            version=len(order.history),
        )
    )
    reached = status_reached_event(order.id, OrderStatus(order.status), cause)
    if reached is not None:
        tx.publish(reached)


def status_reached_event(
    order_id: UUID, status: OrderStatus, cause: str
) -> IntegrationEvent | None:
    """The event of reaching `status`; none for `stock_reserved`, which only orders itself acts
    on (its payment job), and for `pending`, announced by `OrderPlaced`."""
    match status:
        case OrderStatus.PAID:
            return OrderPaid(order_id=order_id)
        case OrderStatus.CONFIRMED:
            return OrderConfirmed(order_id=order_id)
        case OrderStatus.SHIPPED:
            return OrderShipped(order_id=order_id)
        case OrderStatus.REFUNDED:
            return OrderRefunded(order_id=order_id)
        case OrderStatus.PAYMENT_FAILED:
            return OrderPaymentFailed(order_id=order_id, reason=cause)
        case OrderStatus.REJECTED:
            return OrderRejected(order_id=order_id, reason=cause)
        case OrderStatus.CANCELLED:
            return OrderCancelled(order_id=order_id, reason=cause)
        case _:
            return None


def record_email_owed_and_enqueue_job(tx: Transaction, order_id: UUID, status: OrderStatus) -> None:
    """An `order_emails` row saying the customer is owed an email about `status`, and the job
    that sends it, asked for after commit (app/modules/orders/emails.py)."""
    OrderEmailRepository(tx.session).request(order_id, status)
    enqueue_order_email(tx, order_id, status)


async def cancel_and_refund(tx: Transaction, order: Order, cause: str) -> None:
    """Cancel and compensate: the catalog releases what it holds on `OrderCancelled`, and the
    refund job gives back any money held or taken."""
    await change_status(tx, order, OrderStatus.CANCELLED, cause)
    if order.may_hold_money:
        enqueue_refund(tx, order.id)


async def fail_payment_and_refund(tx: Transaction, order: Order, reason: str) -> None:
    """The payment failed: the catalog releases the stock on `OrderPaymentFailed`, and the
    refund job gives back any money held."""
    await change_status(tx, order, OrderStatus.PAYMENT_FAILED, reason)
    if order.may_hold_money:
        enqueue_refund(tx, order.id)
