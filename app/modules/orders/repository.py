from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.orders.models import Order, OrderStatus


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, order_id: UUID, *, for_update: bool = False) -> Order | None:
        return await self._session.get(Order, order_id, with_for_update=for_update)

    async def add(self, order: Order) -> None:
        self._session.add(order)
        await self._session.flush()

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[UUID]:
        query = (
            select(Order.id)
            .where(Order.status == OrderStatus.PENDING, Order.created_at < cutoff)
            .order_by(Order.created_at)
            .limit(limit)
        )
        return list((await self._session.execute(query)).scalars())
