"""What orders reports when Prometheus scrapes: how many times orders reached each status, and
whether this process's circuit to the payment provider is open.

Counted from `status_changes`, the history every transition appends to in its own transaction,
so a rolled-back transition is never counted and every process (API or worker) that moved an
order is seen, whichever process is scraped. History rows are never deleted (erasure keeps
orders for accounting), so the count only grows: a Prometheus counter.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from app.core.events.outbox import UnitOfWork
from app.core.metrics import Reading, ScrapedMetric
from app.modules.orders.models import OrderStatus, StatusChange
from app.modules.orders.payments.port import PaymentGateway


def order_metrics(uow: UnitOfWork, payments: PaymentGateway) -> list[ScrapedMetric]:
    async def transitions() -> Sequence[Reading]:
        query = select(StatusChange.status, func.count()).group_by(StatusChange.status)
        async with uow.database.session() as session:
            counts: dict[str, int] = {
                status: count for status, count in await session.execute(query)
            }
        # Every status has its series from the start, so rate() sees the first one counted.
        return [(counts.get(status.value, 0), {"status": status.value}) for status in OrderStatus]

    async def circuit_open() -> Sequence[Reading]:
        return [(1 if payments.circuit_state == "opened" else 0, {})]

    return [
        ScrapedMetric(
            "keystone.orders.transitions",
            "Orders that reached each status (pending: placed), from the order history",
            "{order}",
            transitions,
            counter=True,
        ),
        ScrapedMetric(
            "keystone.payments.circuit_open",
            "1 while this process's circuit to the payment provider is open (calls fail fast)",
            "{circuit}",
            circuit_open,
        ),
    ]
