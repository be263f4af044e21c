"""The payment steps of the order saga, run as jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.core.events.outbox import UnitOfWork
from app.core.jobs import RetryLater
from app.core.logging import get_logger
from app.modules.orders.models import Order, OrderStatus
from app.modules.orders.payments.port import (
    PaymentDeclinedError,
    PaymentGateway,
    PaymentUnavailableError,
)
from app.modules.orders.repository import OrderRepository
from app.modules.orders.service.job_requests import (
    SWEEP_BATCH,
    enqueue_refund,
    enqueue_take_payment,
)
from app.modules.orders.service.transitions import change_status, fail_payment_and_refund

_log = get_logger("keystone.orders")


class PaymentSaga:
    """The payment steps, run as jobs: each one reads the order's state first and acts only
    when that state still asks for it, and every provider call carries an idempotency key
    derived from the order id, so a job run twice neither charges nor refunds twice."""

    def __init__(self, uow: UnitOfWork, payments: PaymentGateway, redrive_after_s: int) -> None:
        self._uow = uow
        self._payments = payments
        self._redrive_after = timedelta(seconds=redrive_after_s)

    async def take_payment(self, order_id: UUID) -> str:
        # Each step answers with the order's state as its own transaction left it: the order
        # is read once per step, never reloaded in between.
        order = await self._mark_authorisation_requested(order_id)
        if order is None:
            return "no such order"
        state = (str(order.status), order.payment_id)
        if state[0] == OrderStatus.STOCK_RESERVED:
            state = await self._authorise(order)
        status, payment_id = state
        if status == OrderStatus.PAID and payment_id is not None:
            status = await self._capture(order.id, payment_id)
        return status

    async def give_up_payment(self, order_id: UUID) -> str:
        """The provider stayed unreachable through every retry: compensate."""
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.status not in (OrderStatus.STOCK_RESERVED, OrderStatus.PAID):
                return "nothing to give up"
            await fail_payment_and_refund(tx, order, "payment provider unavailable")
        return OrderStatus.PAYMENT_FAILED

    async def refund(self, order_id: UUID) -> str:
        order = await self._load(order_id)
        if order is None or not order.may_hold_money:
            return "nothing to refund"
        if order.status not in (OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED):
            return f"not refunded: the order is {order.status}"
        payment_id = order.payment_id or await self._recover_lost_authorisation(order)
        if payment_id is None:
            return "nothing was held"
        try:
            await self._payments.refund(idempotency_key=f"{order_id}:refund", payment_id=payment_id)
        except PaymentDeclinedError as refused:
            _log.error(
                "refund refused by the provider", order_id=str(order_id), reason=str(refused)
            )
            return f"refund refused: {refused.reason}"
        except PaymentUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order_id, for_update=True)
            assert locked is not None
            if locked.status in (OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED):
                await change_status(tx, locked, OrderStatus.REFUNDED, "payment refunded")
        _log.info("payment refunded", order_id=str(order_id))
        return OrderStatus.REFUNDED

    async def refund_gave_up(self, order_id: UUID) -> str:
        _log.error(
            "refund not done: provider unavailable; the sweep will retry", order_id=str(order_id)
        )
        return "refund pending"

    async def redrive(self, now: datetime | None = None) -> int:
        """The safety net under the jobs: a payment or refund job lost with Redis, or killed with
        its worker, is sent again. Jobs are deduplicated by id, so a live one is not doubled."""
        cutoff = (now or datetime.now(UTC)) - self._redrive_after
        async with self._uow.begin() as tx:
            orders = OrderRepository(tx.session)
            paying = await orders.in_status_since_before(
                [OrderStatus.STOCK_RESERVED, OrderStatus.PAID], cutoff, SWEEP_BATCH, by_update=True
            )
            refunding = await orders.cancelled_with_payment_since_before(cutoff, SWEEP_BATCH)
            for order_id in paying:
                enqueue_take_payment(tx, order_id)
            for order_id in refunding:
                enqueue_refund(tx, order_id)
        return len(paying) + len(refunding)

    async def _load(self, order_id: UUID) -> Order | None:
        async with self._uow.begin() as tx:
            return await OrderRepository(tx.session).get(order_id)

    async def _recover_lost_authorisation(self, order: Order) -> str | None:
        """An authorisation was requested but no answer kept: ask again with the same
        idempotency key, which replays the provider's answer instead of charging anew."""
        try:
            payment_id = await self._authorise_at_provider(order)
        except PaymentDeclinedError:
            payment_id = None
        except PaymentUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order.id, for_update=True)
            assert locked is not None
            locked.payment_id = payment_id
            if payment_id is None:  # declined: nothing is held, nothing left to look for
                locked.authorisation_requested_at = None
        _log.info(
            "lost authorisation recovered", order_id=str(order.id), held=payment_id is not None
        )
        return payment_id

    async def _authorise_at_provider(self, order: Order) -> str:
        return await self._payments.authorise(
            idempotency_key=str(order.id),
            reference=str(order.id),
            amount=order.total,
            currency=order.currency,
            payment_method=order.payment_method,
        )

    async def _authorise(self, order: Order) -> tuple[str, str | None]:
        """Authorise at the provider (the request is noted on the order already); the order's
        status and payment id afterwards."""
        try:
            payment_id = await self._authorise_at_provider(order)
        except PaymentDeclinedError as declined:
            return await self._declined(order.id, declined.reason, nothing_held=True)
        except PaymentUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order.id, for_update=True)
            assert locked is not None
            locked.payment_id = payment_id
            if locked.status == OrderStatus.STOCK_RESERVED:
                await change_status(tx, locked, OrderStatus.PAID, "payment authorised")
            elif locked.status in (OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED):
                # Cancelled or expired while the provider was answering: give the hold back.
                enqueue_refund(tx, order.id)
        _log.info("payment authorised", order_id=str(order.id))
        return str(locked.status), payment_id

    async def _mark_authorisation_requested(self, order_id: UUID) -> Order | None:
        """The order, with the authorisation request noted first when it awaits payment (so a
        hold the provider makes is looked for even if its answer is lost)."""
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order_id, for_update=True)
            if (
                locked is not None
                and locked.status == OrderStatus.STOCK_RESERVED
                and locked.authorisation_requested_at is None
            ):
                locked.authorisation_requested_at = datetime.now(UTC)
        return locked

    async def _capture(self, order_id: UUID, payment_id: str) -> str:
        """Capture at the provider; the order's status afterwards."""
        try:
            await self._payments.capture(
                idempotency_key=f"{order_id}:capture", payment_id=payment_id
            )
        except PaymentDeclinedError as declined:
            return (await self._declined(order_id, declined.reason, nothing_held=False))[0]
        except PaymentUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order_id, for_update=True)
            assert locked is not None
            if locked.status == OrderStatus.PAID:
                await change_status(tx, locked, OrderStatus.CONFIRMED, "payment captured")
        _log.info("payment captured", order_id=str(order_id))
        return str(locked.status)

    async def _declined(
        self, order_id: UUID, reason: str, *, nothing_held: bool
    ) -> tuple[str, str | None]:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            assert order is not None
            if nothing_held:  # the provider answered the authorisation: no money is held
                order.authorisation_requested_at = None
            if order.status in (OrderStatus.STOCK_RESERVED, OrderStatus.PAID):
                await fail_payment_and_refund(tx, order, reason)
        _log.info("payment declined", order_id=str(order_id), reason=reason)
        return str(order.status), order.payment_id
