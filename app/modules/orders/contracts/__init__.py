"""What other modules may know about orders: the events it publishes."""

from app.modules.orders.contracts.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderedItem,
    OrderPlaced,
    OrderRejected,
)

__all__ = ["OrderCancelled", "OrderConfirmed", "OrderPlaced", "OrderRejected", "OrderedItem"]
