"""What other modules may know about orders: the events it publishes."""

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
