"""Use cases of orders: placing an order and moving it through its states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger
from app.core.security.rbac import Permission, Principal
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderedItem,
    OrderPlaced,
    OrderRejected,
)
from app.modules.orders.exceptions import (
    IllegalTransitionError,
    MixedCurrenciesError,
    OrderNotFoundError,
    OrderTotalTooLargeError,
    UnknownProductsError,
)
from app.modules.orders.models import Order, OrderLine, OrderStatus, StatusChange
from app.modules.orders.repository import OrderRepository

EXPIRE_ORDER_JOB = "orders.expire_order"
# orders.total is NUMERIC(14, 2): fifty lines of a hundred units at the highest product price
# add up to more, which Postgres would refuse with a 500.
MAX_TOTAL = Decimal(10) ** 12
_log = get_logger("keystone.orders")

# The order state machine, in one place: which status may follow which.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


def move(order: Order, target: OrderStatus, cause: str) -> None:
    if target not in TRANSITIONS[OrderStatus(order.status)]:
        raise IllegalTransitionError(order.status, target)
    order.status = target
    order.history.append(StatusChange(status=target, cause=cause))


class OrderService:
    def __init__(self, uow: UnitOfWork, catalog: CatalogFacade, pending_timeout_s: int) -> None:
        self._uow = uow
        self._catalog = catalog
        self._pending_timeout = timedelta(seconds=pending_timeout_s)

    async def place_order(self, customer_id: UUID, items: Sequence[tuple[UUID, int]]) -> Order:
        quantities = dict(items)
        snapshots = {
            p.product_id: p for p in await self._catalog.products_for_order(list(quantities))
        }
        missing = [product_id for product_id in quantities if product_id not in snapshots]
        if missing:
            raise UnknownProductsError(missing)
        currencies = {snapshot.currency for snapshot in snapshots.values()}
        if len(currencies) != 1:
            raise MixedCurrenciesError
        total = sum(
            (snapshots[pid].unit_price * qty for pid, qty in quantities.items()), Decimal(0)
        )
        if total >= MAX_TOTAL:
            raise OrderTotalTooLargeError(MAX_TOTAL)
        order = Order(
            id=uuid4(),
            customer_id=customer_id,
            status=OrderStatus.PENDING,
            currency=currencies.pop(),
            total=total,
            lines=[
                OrderLine(
                    position=position,
                    product_id=pid,
                    sku=snapshots[pid].sku,
                    name=snapshots[pid].name,
                    unit_price=snapshots[pid].unit_price,
                    quantity=qty,
                )
                for position, (pid, qty) in enumerate(quantities.items())
            ],
            history=[StatusChange(status=OrderStatus.PENDING, cause="placed")],
        )
        async with self._uow.begin() as tx:
            await OrderRepository(tx.session).add(order)
            tx.publish(
                OrderPlaced(
                    order_id=order.id,
                    customer_id=customer_id,
                    items=[OrderedItem(product_id=p, quantity=q) for p, q in quantities.items()],
                )
            )
            tx.enqueue_after_commit(
                EXPIRE_ORDER_JOB,
                str(order.id),
                defer_by=self._pending_timeout,
                job_id=f"expire-order:{order.id}",
            )
        return order

    async def get_order(self, order_id: UUID, viewer: Principal) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id)
        # Someone else's order is "not found", not "forbidden": ids cannot be probed.
        if order is None or not (
            order.customer_id == viewer.user_id or viewer.can(Permission.ORDERS_READ_ANY)
        ):
            raise OrderNotFoundError
        return order

    async def settle_reservation(
        self, tx: Transaction, order_id: UUID, reserved: bool, cause: str
    ) -> None:
        """React to the catalog's answer to `OrderPlaced`."""
        order = await OrderRepository(tx.session).get(order_id, for_update=True)
        if order is None or order.status != OrderStatus.PENDING:
            # Expired or cancelled meanwhile: the catalog releases the stock on OrderCancelled.
            _log.info("reservation answer ignored", order_id=str(order_id), reserved=reserved)
            return
        if reserved:
            move(order, OrderStatus.CONFIRMED, cause)
            tx.publish(OrderConfirmed(order_id=order_id))
        else:
            move(order, OrderStatus.REJECTED, cause)
            tx.publish(OrderRejected(order_id=order_id, reason=cause))

    async def expire_if_pending(self, order_id: UUID) -> bool:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.status != OrderStatus.PENDING:
                return False
            move(order, OrderStatus.CANCELLED, "expired")
            tx.publish(OrderCancelled(order_id=order_id, reason="expired"))
        _log.info("pending order expired", order_id=str(order_id))
        return True

    async def expire_stale_orders(self, now: datetime | None = None, batch: int = 500) -> int:
        cutoff = (now or datetime.now(UTC)) - self._pending_timeout
        async with self._uow.begin() as tx:
            stale = await OrderRepository(tx.session).pending_since_before(cutoff, batch)
        return sum([await self.expire_if_pending(order_id) for order_id in stale])
