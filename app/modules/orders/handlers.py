"""Orders' reactions to the catalog's answers and to users' erasures. (Its order list is
written with each order, in the same transaction, not from its own events: docs/adr.)"""

from __future__ import annotations

from app.core.events.bus import Subscription
from app.core.events.outbox import Transaction, UnitOfWork
from app.modules.catalog.contracts import (
    StockCommitFailed,
    StockReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from app.modules.orders.service import OrderService
from app.modules.users.contracts import UserErased


def subscriptions(uow: UnitOfWork, orders: OrderService) -> list[Subscription]:
    async def reserved(event: StockReserved, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=True, cause="stock reserved")

    async def reject(event: StockReservationFailed, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=False, cause=event.reason)

    async def reservation_expired(event: StockReservationExpired, tx: Transaction) -> None:
        await orders.reservation_expired(tx, event.order_id)

    async def stock_not_retaken(event: StockCommitFailed, tx: Transaction) -> None:
        await orders.stock_not_retaken(tx, event.order_id, event.reason)

    async def erase_customer(event: UserErased, tx: Transaction) -> None:
        await orders.erase_customer(tx, event.user_id)

    return [
        # The handler names are inbox keys: kept from before, so no delivery is repeated.
        Subscription(StockReserved, "orders.confirm_order", reserved, uow),
        Subscription(StockReservationFailed, "orders.reject_order", reject, uow),
        Subscription(
            StockReservationExpired, "orders.cancel_unreserved_order", reservation_expired, uow
        ),
        Subscription(StockCommitFailed, "orders.refund_unstocked_order", stock_not_retaken, uow),
        Subscription(UserErased, "orders.forget_customer", erase_customer, uow),
    ]
