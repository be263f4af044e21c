"""Stock held for orders: reserved when an order is placed, released or sold as it ends."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from app.core.events.outbox import Transaction
from app.core.logging import get_logger
from app.modules.catalog.contracts import (
    StockChanged,
    StockCommitFailed,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from app.modules.catalog.models import Reservation
from app.modules.catalog.repository import StockRepository

_log = get_logger("keystone.catalog")


class _ShortageError(Exception):
    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"not enough stock for {product_id}")
        self.product_id = product_id


async def _take_all(
    tx: Transaction, stock: StockRepository, lines: Sequence[tuple[UUID, int]]
) -> dict[UUID, int]:
    """Take every line or none: the units left per product, or `_ShortageError` naming the
    first product short, with whatever was taken before it given back."""
    if len(lines) == 1:  # one statement is all or nothing already: no savepoint round trips
        product_id, quantity = lines[0]
        remaining = await stock.take(product_id, quantity)
        if remaining is None:
            raise _ShortageError(product_id)
        return {product_id: remaining}
    left: dict[UUID, int] = {}
    async with tx.savepoint():
        # A fixed lock order keeps concurrent multi-line takers and givers from deadlocking.
        for product_id, quantity in sorted(lines):
            remaining = await stock.take(product_id, quantity)
            if remaining is None:
                raise _ShortageError(product_id)
            left[product_id] = remaining
    return left


async def _shortage_reason(stock: StockRepository, shortage: _ShortageError) -> str:
    return "unavailable" if await stock.is_archived(shortage.product_id) else "out_of_stock"


class StockService:
    """Holds stock for orders. Each call runs inside the caller's transaction (an event
    handler's), so the stock change, the reservation record and the event it emits commit
    together with the inbox entry that makes redelivery harmless."""

    async def reserve_for_order(
        self, tx: Transaction, order_id: UUID, lines: Sequence[tuple[UUID, int]]
    ) -> None:
        stock = StockRepository(tx.session)
        if await stock.reservation(order_id) is not None:
            return
        # Recorded before the stock is taken: a product row, hot during a sale, then stays
        # locked only from the take to the commit, not across these inserts as well.
        await stock.record(order_id, "reserved", lines)
        try:
            left = await _take_all(tx, stock, lines)
        except _ShortageError as shortage:
            await stock.reject(order_id)
            tx.publish(
                StockReservationFailed(
                    order_id=order_id,
                    reason=await _shortage_reason(stock, shortage),
                    product_ids=[shortage.product_id],
                )
            )
            return
        for product_id, available in left.items():
            tx.publish(
                StockChanged(
                    product_id=product_id, available=available, cause="reserved", order_id=order_id
                )
            )
        tx.publish(StockReserved(order_id=order_id))

    async def release_for_order(self, tx: Transaction, order_id: UUID) -> None:
        stock = StockRepository(tx.session)
        reservation = await stock.reservation(order_id)
        if reservation is None:
            await stock.record(order_id, "released")
            return
        # Committed stock is still on the shelf until the order ships, so a cancelled
        # confirmed order gives it back too. Expired stock was given back already.
        if reservation.status not in ("reserved", "committed"):
            return
        for line in await stock.reservation_lines(order_id):
            available = await stock.put_back(line.product_id, line.quantity)
            tx.publish(
                StockChanged(
                    product_id=line.product_id,
                    available=available,
                    cause="released",
                    order_id=order_id,
                )
            )
        reservation.status = "released"
        tx.publish(StockReleased(order_id=order_id))

    async def commit_for_order(self, tx: Transaction, order_id: UUID) -> None:
        """The order is paid for: its reserved stock is sold. The stock count already excludes
        it; the reservation stops being releasable by expiry or a failed payment.

        The order may have been paid after its reservation expired (orders was down, or the
        capture was retried past RESERVATION_TTL_S): the stock is on sale again and may be gone.
        Then it is taken again, every line or none, under the same row locks as any reservation;
        if it is not all there, nothing is sold and `StockCommitFailed` makes orders cancel and
        refund the order. So stock is never sold twice, and a paid order ends confirmed with its
        stock or refunded."""
        stock = StockRepository(tx.session)
        reservation = await stock.reservation(order_id)
        if reservation is None:
            return
        if reservation.status == "reserved":
            reservation.status = "committed"
        elif reservation.status == "expired":
            await self._retake(tx, stock, reservation)

    @staticmethod
    async def _retake(tx: Transaction, stock: StockRepository, reservation: Reservation) -> None:
        order_id = reservation.order_id
        lines = [
            (line.product_id, line.quantity) for line in await stock.reservation_lines(order_id)
        ]
        try:
            left = await _take_all(tx, stock, lines)
        except _ShortageError as shortage:
            tx.publish(
                StockCommitFailed(
                    order_id=order_id,
                    reason=await _shortage_reason(stock, shortage),
                    product_ids=[shortage.product_id],
                )
            )
            _log.warning("expired stock not there for a paid order", order_id=str(order_id))
            return
        reservation.status = "committed"
        for product_id, available in left.items():
            tx.publish(
                StockChanged(
                    product_id=product_id, available=available, cause="retaken", order_id=order_id
                )
            )
        _log.info("expired stock taken again for a paid order", order_id=str(order_id))
