"""Giving back stock that orders held too long."""

from __future__ import annotations

from datetime import timedelta

from app.core.events.outbox import UnitOfWork
from app.core.logging import get_logger
from app.modules.catalog.contracts import StockChanged, StockReservationExpired
from app.modules.catalog.repository import StockRepository

# Reservations expired per transaction: a backlog is worked through in short transactions.
EXPIRY_BATCH = 200
_log = get_logger("keystone.catalog")


class ReservationExpiry:
    """Gives back stock held for orders nobody settled within RESERVATION_TTL_S: the safety net
    for when orders never answers (its process down, lifted out and unreachable). Orders expires
    its own unanswered orders sooner (ORDER_PENDING_TIMEOUT_S, which the TTL must exceed), so in
    a healthy system this finds nothing.

    Each batch is one transaction: the overdue reservations are locked with SKIP LOCKED (a
    release or commit holding one is left to finish), their lines are put back in product order
    (the lock order of every stock writer, so no deadlock), and each reservation turns
    `expired` with `StockReservationExpired` and the `StockChanged` events in the outbox.
    Orders cancels an order still waiting for payment; a payment that lands anyway is handled
    when the order is confirmed (`StockService.commit_for_order`)."""

    def __init__(self, uow: UnitOfWork, ttl_s: int, batch_size: int = EXPIRY_BATCH) -> None:
        self._uow = uow
        self._ttl = timedelta(seconds=ttl_s)
        self._batch_size = batch_size

    async def expire_overdue(self) -> int:
        """Expire every overdue reservation, a batch at a time; how many were expired."""
        expired = 0
        while True:
            batch = await self._expire_batch()
            expired += batch
            if batch < self._batch_size:
                return expired

    async def _expire_batch(self) -> int:
        async with self._uow.begin() as tx:
            stock = StockRepository(tx.session)
            overdue = await stock.overdue(self._ttl, self._batch_size)
            for line in await stock.lines_of([r.order_id for r in overdue]):
                available = await stock.put_back(line.product_id, line.quantity)
                tx.publish(
                    StockChanged(
                        product_id=line.product_id,
                        available=available,
                        cause="expired",
                        order_id=line.order_id,
                    )
                )
            for reservation in overdue:
                reservation.status = "expired"
                tx.publish(
                    StockReservationExpired(
                        order_id=reservation.order_id, reserved_at=reservation.created_at
                    )
                )
        if overdue:
            _log.info("reservations expired", orders=[str(r.order_id) for r in overdue])
        return len(overdue)
