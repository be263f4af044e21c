from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.orders.models import (
    EmailOutcome,
    IdempotencyKey,
    Order,
    OrderEmail,
    OrderStatus,
    OrderSummary,
)


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, order_id: UUID, *, for_update: bool = False) -> Order | None:
        return await self._session.get(
            Order, order_id, with_for_update=for_update, populate_existing=for_update
        )

    async def add(self, order: Order) -> None:
        self._session.add(order)
        await self._session.flush()

    async def in_status_since_before(
        self, statuses: list[OrderStatus], cutoff: datetime, limit: int, *, by_update: bool = False
    ) -> list[UUID]:
        moment = Order.updated_at if by_update else Order.created_at
        query = (
            select(Order.id)
            .where(Order.status.in_(statuses), moment < cutoff)
            .order_by(moment)
            .limit(limit)
        )
        return list((await self._session.execute(query)).scalars())

    async def cancelled_with_payment_since_before(self, cutoff: datetime, limit: int) -> list[UUID]:
        query = (
            select(Order.id)
            .where(
                Order.status.in_([OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED]),
                (Order.payment_id.is_not(None)) | (Order.authorisation_requested_at.is_not(None)),
                Order.updated_at < cutoff,
            )
            .order_by(Order.updated_at)
            .limit(limit)
        )
        return list((await self._session.execute(query)).scalars())

    async def erase_customer(self, customer_id: UUID) -> int:
        """Blank what identifies the person on their orders; amounts and lines stay."""
        result = await self._session.execute(
            update(Order)
            .where(Order.customer_id == customer_id)
            .values(shipping_address={}, payment_method="")
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class OrderEmailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def request(self, order_id: UUID, status: OrderStatus) -> None:
        self._session.add(OrderEmail(order_id=order_id, status=status))

    async def get(self, order_id: UUID, status: str) -> OrderEmail | None:
        return await self._session.get(OrderEmail, (order_id, status))

    async def settle(self, order_id: UUID, status: str, outcome: EmailOutcome) -> None:
        await self._session.execute(
            update(OrderEmail)
            .where(
                OrderEmail.order_id == order_id,
                OrderEmail.status == status,
                OrderEmail.settled_at.is_(None),
            )
            .values(settled_at=func.now(), outcome=outcome)
        )

    async def unsettled_since_before(self, cutoff: datetime, limit: int) -> list[tuple[UUID, str]]:
        query = (
            select(OrderEmail.order_id, OrderEmail.status)
            .where(OrderEmail.settled_at.is_(None), OrderEmail.requested_at < cutoff)
            .order_by(OrderEmail.requested_at)
            .limit(limit)
        )
        return [(order_id, status) for order_id, status in await self._session.execute(query)]


class IdempotencyKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def live(self, customer_id: UUID, key: str) -> IdempotencyKey | None:
        query = select(IdempotencyKey).where(
            IdempotencyKey.customer_id == customer_id,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at > func.now(),
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def claim(
        self, customer_id: UUID, key: str, request_hash: str, order_id: UUID, expires_at: datetime
    ) -> bool:
        """Record the key for this order; False when a live record exists already. A concurrent
        claim of the same key waits here until the other transaction ends."""
        values = {
            "customer_id": customer_id,
            "key": key,
            "request_hash": request_hash,
            "order_id": order_id,
            "expires_at": expires_at,
        }
        statement = (
            pg_insert(IdempotencyKey)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[IdempotencyKey.customer_id, IdempotencyKey.key],
                set_={**values, "created_at": func.now()},
                where=IdempotencyKey.expires_at <= func.now(),
            )
            .returning(IdempotencyKey.order_id)
        )
        return (await self._session.execute(statement)).first() is not None

    async def purge_expired(self) -> int:
        result = await self._session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= func.now())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class OrderSummaryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save(self, order: Order) -> None:
        """Write the order's summary as the order now stands, in the order's own transaction:
        one statement, inserting the row on the order's first write and moving it on after.
        A later version already there wins (a summary is never moved back)."""
        summary = pg_insert(OrderSummary).values(
            order_id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            version=len(order.history),
            total=order.total,
            currency=order.currency,
            item_count=sum(line.quantity for line in order.lines),
            # Unset until the order's insert is flushed: the same transaction's now() then.
            placed_at=order.created_at or func.now(),
            updated_at=func.now(),
        )
        await self._session.execute(
            summary.on_conflict_do_update(
                index_elements=[OrderSummary.order_id],
                set_={
                    "status": summary.excluded.status,
                    "version": summary.excluded.version,
                    "updated_at": summary.excluded.updated_at,
                },
                where=OrderSummary.version < summary.excluded.version,
            )
        )

    async def newest_first(
        self,
        limit: int,
        after: tuple[datetime, UUID] | None,
        customer_id: UUID | None,
        status: str | None,
    ) -> list[OrderSummary]:
        query = select(OrderSummary)
        if customer_id is not None:
            query = query.where(OrderSummary.customer_id == customer_id)
        if status is not None:
            query = query.where(OrderSummary.status == status)
        if after is not None:
            query = query.where(
                tuple_(OrderSummary.placed_at, OrderSummary.order_id) < tuple_(*after)
            )
        query = query.order_by(OrderSummary.placed_at.desc(), OrderSummary.order_id.desc())
        return list((await self._session.execute(query.limit(limit))).scalars())
