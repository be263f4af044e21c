"""What other modules may know about orders: the events it publishes (events.py says which of
an order's status events to subscribe to)."""

from app.modules.orders.contracts.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderedItem,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
)

__all__ = [
    "OrderCancelled",
    "OrderConfirmed",
    "OrderPaid",
    "OrderPaymentFailed",
    "OrderPlaced",
    "OrderRefunded",
    "OrderRejected",
    "OrderShipped",
    "OrderStatusChanged",
    "OrderedItem",
]
