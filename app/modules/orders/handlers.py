"""Orders' reactions to the catalog's answers, to users' erasures, and to its own events (the
read side)."""

from __future__ import annotations

from app.core.events.bus import Subscription
from app.core.events.outbox import Transaction, UnitOfWork
from app.modules.catalog.contracts import (
    StockCommitFailed,
    StockReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from app.modules.orders.contracts import OrderPlaced, OrderStatusChanged
from app.modules.orders.service import OrderProjection, OrderService
from app.modules.users.contracts import UserErased


def subscriptions(
    uow: UnitOfWork, orders: OrderService, projection: OrderProjection
) -> list[Subscription]:
    async def reserved(event: StockReserved, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=True, cause="stock reserved")

    async def reject(event: StockReservationFailed, tx: Transaction) -> None:
        await orders.settle_reservation(tx, event.order_id, reserved=False, cause=event.reason)

    async def reservation_expired(event: StockReservationExpired, tx: Transaction) -> None:
        await orders.reservation_expired(tx, event.order_id)

    async def stock_not_retaken(event: StockCommitFailed, tx: Transaction) -> None:
        await orders.stock_not_retaken(tx, event.order_id, event.reason)

    async def forget_customer(event: UserErased, tx: Transaction) -> None:
        await orders.forget_customer(tx, event.user_id)

    async def project_placed(event: OrderPlaced, tx: Transaction) -> None:
        await projection.on_placed(tx, event)

    async def project_status(event: OrderStatusChanged, tx: Transaction) -> None:
        await projection.on_status_changed(tx, event)

    return [
        # The handler names are inbox keys: kept from before, so no delivery is repeated.
        Subscription(StockReserved, "orders.confirm_order", reserved, uow),
        Subscription(StockReservationFailed, "orders.reject_order", reject, uow),
        Subscription(
            StockReservationExpired, "orders.cancel_unreserved_order", reservation_expired, uow
        ),
        Subscription(StockCommitFailed, "orders.refund_unstocked_order", stock_not_retaken, uow),
        Subscription(OrderPlaced, "orders.project_placed_order", project_placed, uow),
        Subscription(OrderStatusChanged, "orders.project_status_change", project_status, uow),
        Subscription(UserErased, "orders.forget_customer", forget_customer, uow),
    ]
