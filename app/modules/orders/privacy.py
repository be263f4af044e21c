"""What orders holds about a person, for their data export: their orders, lines, shipping
addresses and payment methods. Erasure is the `UserErased` handler (orders/handlers.py): it
blanks addresses and payment methods and keeps amounts for accounting.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select

from app.core.events.outbox import UnitOfWork
from app.modules.orders.models import Order


class OrdersPersonalData:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def export(self, user_id: UUID) -> dict[str, Any]:
        query = select(Order).where(Order.customer_id == user_id).order_by(Order.created_at)
        async with self._uow.begin() as tx:
            orders = list((await tx.session.execute(query)).scalars())
            return {"orders": [_order(order) for order in orders]}


def _order(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "status": order.status,
        "total": str(order.total),
        "currency": order.currency,
        "created_at": order.created_at.isoformat(),
        "shipping_address": order.shipping_address,
        "payment_method": order.payment_method,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
            }
            for line in order.lines
        ],
    }
