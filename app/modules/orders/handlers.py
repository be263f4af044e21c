"""Orders' reactions to the catalog's answers."""

from __future__ import annotations

from app.core.events.bus import Subscription
from app.core.events.outbox import Transaction, UnitOfWork
from app.modules.catalog.contracts import StockReservationFailed, StockReserved
from app.modules.orders.service import OrderService


def subscriptions(uow: UnitOfWork, orders: OrderService) -> list[Subscription]:
    async def confirm(event: StockReserved, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=True, cause="stock reserved")

    async def reject(event: StockReservationFailed, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=False, cause=event.reason)

    return [
        Subscription(StockReserved, "orders.confirm_order", confirm, uow),
        Subscription(StockReservationFailed, "orders.reject_order", reject, uow),
    ]
