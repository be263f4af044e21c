"""The catalog's reactions to other modules' events."""

from __future__ import annotations

from app.core.events.bus import Subscription
from app.core.events.outbox import Transaction, UnitOfWork
from app.modules.catalog.service import StockService
from app.modules.orders.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentFailed,
    OrderPlaced,
)


def subscriptions(uow: UnitOfWork, stock: StockService) -> list[Subscription]:
    async def reserve_stock(event: OrderPlaced, tx: Transaction) -> None:
        lines = [(item.product_id, item.quantity) for item in event.items]
        await stock.reserve_for_order(tx, event.order_id, lines)

    async def release_stock(event: OrderCancelled, tx: Transaction) -> None:
        await stock.release_for_order(tx, event.order_id)

    async def release_unpaid_stock(event: OrderPaymentFailed, tx: Transaction) -> None:
        await stock.release_for_order(tx, event.order_id)

    async def commit_stock(event: OrderConfirmed, tx: Transaction) -> None:
        await stock.commit_for_order(tx, event.order_id)

    return [
        Subscription(OrderPlaced, "catalog.reserve_stock", reserve_stock, uow),
        Subscription(OrderCancelled, "catalog.release_stock", release_stock, uow),
        Subscription(OrderPaymentFailed, "catalog.release_unpaid_stock", release_unpaid_stock, uow),
        Subscription(OrderConfirmed, "catalog.commit_stock", commit_stock, uow),
    ]
