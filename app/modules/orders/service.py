"""Use cases of orders: checkout, the payment saga, cancelling and shipping, and the read side.

The saga is choreographed through integration events and jobs:
`OrderPlaced` -> the catalog reserves stock -> `stock_reserved` -> the payment job authorises
(`paid`) and captures (`confirmed`, the catalog commits the stock). Each failure compensates:
no stock -> `rejected`; a declined or unreachable payment -> `payment_failed` and the catalog
releases the stock; a cancelled order releases its stock and refunds what was paid.
Should this module stay silent past RESERVATION_TTL_S, the catalog gives the stock back itself
(`StockReservationExpired`): an order still awaiting payment is cancelled, and one confirmed
regardless is refunded if the catalog cannot take its stock again (`StockCommitFailed`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from app.core.events.outbox import Transaction, UnitOfWork
from app.core.jobs import RetryLater
from app.core.logging import get_logger
from app.core.pagination import InvalidCursorError, decode_cursor, encode_cursor
from app.core.security.rbac import Permission, Principal
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderedItem,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    OrderStatusChanged,
)
from app.modules.orders.exceptions import (
    DuplicateOrderLinesError,
    EmailNotVerifiedError,
    IdempotencyKeyReusedError,
    IllegalTransitionError,
    MixedCurrenciesError,
    OrderNotFoundError,
    OrderTotalTooLargeError,
    UnknownProductsError,
)
from app.modules.orders.models import Order, OrderLine, OrderStatus, OrderSummary, StatusChange
from app.modules.orders.payments.port import (
    PaymentDeclinedError,
    PaymentGateway,
    PaymentUnavailableError,
)
from app.modules.orders.repository import (
    IdempotencyKeyRepository,
    OrderEmailRepository,
    OrderRepository,
    OrderSummaryRepository,
)
from app.modules.users.contracts import UsersFacade

EXPIRE_ORDER_JOB = "orders.expire_order"
TAKE_PAYMENT_JOB = "orders.take_payment"
REFUND_PAYMENT_JOB = "orders.refund_payment"
SEND_ORDER_EMAIL_JOB = "orders.send_order_email"
# orders.total is NUMERIC(14, 2): fifty lines of a hundred units at the highest product price
# add up to more, which Postgres would refuse with a 500.
MAX_TOTAL = Decimal(10) ** 12
SWEEP_BATCH = 500
_CURSOR_KEYS = frozenset({"placed_at", "id"})
_log = get_logger("keystone.orders")

S = OrderStatus
# The order state machine, in one place: which status may follow which.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.STOCK_RESERVED, S.REJECTED, S.CANCELLED}),
    S.STOCK_RESERVED: frozenset({S.PAID, S.PAYMENT_FAILED, S.CANCELLED}),
    S.PAID: frozenset({S.CONFIRMED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset(),
    S.REJECTED: frozenset(),
    # The money held or taken for a cancelled or failed order is given back.
    S.PAYMENT_FAILED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
}
# The statuses the customer is told about by email (app/modules/orders/emails.py).
EMAILED_STATUSES = frozenset({S.CONFIRMED, S.PAYMENT_FAILED, S.REFUNDED})
AWAITING_PAYMENT = (S.PENDING, S.STOCK_RESERVED)
RESERVATION_EXPIRED = "reservation expired"


async def move(tx: Transaction, order: Order, target: OrderStatus, cause: str) -> None:
    """The only way an order changes status: checked against TRANSITIONS, recorded with its
    cause and time, written to the order list's summary, announced (`OrderStatusChanged`), and
    for EMAILED_STATUSES an email to the customer owed in the same transaction."""
    if target not in TRANSITIONS[OrderStatus(order.status)]:
        raise IllegalTransitionError(order.status, target)
    order.status = target
    order.history.append(StatusChange(status=target, cause=cause[:200]))
    tx.publish(
        OrderStatusChanged(
            order_id=order.id,
            customer_id=order.customer_id,
            status=target,
            cause=cause[:200],
            version=len(order.history),
        )
    )
    await OrderSummaryRepository(tx.session).save(order)
    if target in EMAILED_STATUSES:
        OrderEmailRepository(tx.session).request(order.id, target)
        enqueue_order_email(tx, order.id, target)


@dataclass(frozen=True)
class Checkout:
    """One `POST /orders`: who, with which idempotency key, and what they asked for."""

    customer_id: UUID
    idempotency_key: str
    items: Sequence[tuple[UUID, int]]
    shipping_address: dict[str, Any]
    payment_method: str

    @property
    def request_hash(self) -> str:
        body = {
            "items": [[str(product), quantity] for product, quantity in self.items],
            "shipping_address": self.shipping_address,
            "payment_method": self.payment_method,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    replayed: bool


@dataclass(frozen=True)
class OrderPage:
    items: list[OrderSummary]
    next_cursor: str | None


class OrderService:
    def __init__(
        self,
        uow: UnitOfWork,
        catalog: CatalogFacade,
        users: UsersFacade,
        pending_timeout_s: int,
        idempotency_key_ttl_s: int,
        require_verified_email: bool,
    ) -> None:
        self._uow = uow
        self._catalog = catalog
        self._users = users
        self._pending_timeout = timedelta(seconds=pending_timeout_s)
        self._key_ttl = timedelta(seconds=idempotency_key_ttl_s)
        self._require_verified_email = require_verified_email

    # --- checkout --------------------------------------------------------------------------

    async def place_order(self, checkout: Checkout) -> PlacedOrder:
        # Checked here rather than in the request model: a JSON schema cannot say "unique by
        # product_id", and the document states every rule of the model.
        product_ids = [product for product, _ in checkout.items]
        if len(set(product_ids)) != len(product_ids):
            raise DuplicateOrderLinesError
        replay = await self._replay(checkout)
        if replay is not None:
            return replay
        # Asked of users at each checkout, never of the token: a token issued before the
        # address was verified would refuse for its whole life (docs/adr/0005).
        if self._require_verified_email and not await self._users.email_verified(
            checkout.customer_id
        ):
            raise EmailNotVerifiedError
        order = await self._new_order(checkout)
        async with self._uow.begin() as tx:
            claimed = await IdempotencyKeyRepository(tx.session).claim(
                checkout.customer_id,
                checkout.idempotency_key,
                checkout.request_hash,
                order.id,
                datetime.now(UTC) + self._key_ttl,
            )
            if not claimed:  # a concurrent request with this key committed first
                return await self._replay_in(tx, checkout)
            await OrderRepository(tx.session).add(order)
            await OrderSummaryRepository(tx.session).save(order)
            tx.publish(
                OrderPlaced(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    items=[OrderedItem(product_id=p, quantity=q) for p, q in checkout.items],
                    total=order.total,
                    currency=order.currency,
                )
            )
            tx.enqueue_after_commit(
                EXPIRE_ORDER_JOB,
                str(order.id),
                defer_by=self._pending_timeout,
                job_id=f"expire-order:{order.id}",
            )
        _log.info("order placed", order_id=str(order.id), total=str(order.total))
        return PlacedOrder(order, replayed=False)

    async def _replay(self, checkout: Checkout) -> PlacedOrder | None:
        async with self._uow.begin() as tx:
            if await IdempotencyKeyRepository(tx.session).live(
                checkout.customer_id, checkout.idempotency_key
            ):
                return await self._replay_in(tx, checkout)
        return None

    async def _replay_in(self, tx: Transaction, checkout: Checkout) -> PlacedOrder:
        seen = await IdempotencyKeyRepository(tx.session).live(
            checkout.customer_id, checkout.idempotency_key
        )
        assert seen is not None  # claimed by a committed transaction, and not yet expired
        if seen.request_hash != checkout.request_hash:
            raise IdempotencyKeyReusedError
        order = await OrderRepository(tx.session).get(seen.order_id)
        assert order is not None  # the key and its order commit together
        _log.info("checkout replayed", order_id=str(order.id))
        return PlacedOrder(order, replayed=True)

    async def _new_order(self, checkout: Checkout) -> Order:
        quantities = dict(checkout.items)
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
        return Order(
            id=uuid4(),
            customer_id=checkout.customer_id,
            status=OrderStatus.PENDING,
            currency=currencies.pop(),
            total=total,
            shipping_address=checkout.shipping_address,
            payment_method=checkout.payment_method,
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

    # --- reading ---------------------------------------------------------------------------

    async def get_order(self, order_id: UUID, viewer: Principal) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id)
        # Someone else's order is "not found", not "forbidden": ids cannot be probed.
        if order is None or not (
            order.customer_id == viewer.user_id or viewer.can(Permission.ORDERS_READ_ANY)
        ):
            raise OrderNotFoundError
        return order

    async def list_orders(
        self,
        *,
        limit: int,
        cursor: str | None,
        customer_id: UUID | None,
        status: OrderStatus | None,
    ) -> OrderPage:
        """Newest first, from the read side; `customer_id=None` lists everyone's."""
        after = _decode_order_cursor(cursor) if cursor is not None else None
        async with self._uow.begin() as tx:
            rows = await OrderSummaryRepository(tx.session).newest_first(
                limit + 1, after, customer_id, status
            )
        items, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = items[-1]
            next_cursor = encode_cursor(
                {"placed_at": last.placed_at.isoformat(), "id": str(last.order_id)}
            )
        return OrderPage(items=items, next_cursor=next_cursor)

    # --- the customer and the warehouse ----------------------------------------------------

    async def cancel(self, order_id: UUID, owner: Principal) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.customer_id != owner.user_id:
                raise OrderNotFoundError
            await _cancel(tx, order, "cancelled by the customer")
        _log.info("order cancelled", order_id=str(order_id), refund=order.may_hold_money)
        return order

    async def ship(self, order_id: UUID) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None:
                raise OrderNotFoundError
            await move(tx, order, OrderStatus.SHIPPED, "shipped")
            tx.publish(OrderShipped(order_id=order.id))
        return order

    # --- the saga's steps ------------------------------------------------------------------

    async def forget_customer(self, tx: Transaction, customer_id: UUID) -> None:
        """The person asked to be erased: their orders keep amounts and products for the
        books, lose the shipping address and the payment method."""
        forgotten = await OrderRepository(tx.session).forget_customer(customer_id)
        _log.info("customer forgotten on orders", customer_id=str(customer_id), orders=forgotten)

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
            await move(tx, order, OrderStatus.STOCK_RESERVED, cause)
            _enqueue_payment(tx, order_id)
        else:
            await move(tx, order, OrderStatus.REJECTED, cause)
            tx.publish(OrderRejected(order_id=order_id, reason=cause))

    async def reservation_expired(self, tx: Transaction, order_id: UUID) -> None:
        """The catalog gave the order's stock back: nobody settled it within RESERVATION_TTL_S
        (this module was down, or its events were held up). An order still waiting for stock or
        payment is cancelled, and a hold already requested is released by the refund job. A
        paid order is left to finish: its confirmation makes the catalog take the stock again,
        or answer `StockCommitFailed` (see `stock_not_retaken`)."""
        order = await OrderRepository(tx.session).get(order_id, for_update=True)
        if order is None or order.status not in AWAITING_PAYMENT:
            _log.info("reservation expiry ignored", order_id=str(order_id))
            return
        await _cancel(tx, order, RESERVATION_EXPIRED)
        _log.info("order cancelled: its reservation expired", order_id=str(order_id))

    async def stock_not_retaken(self, tx: Transaction, order_id: UUID, reason: str) -> None:
        """The order was confirmed after its reservation expired, and the stock was gone by
        then: the catalog sold nothing, so the order is cancelled and what was paid refunded."""
        order = await OrderRepository(tx.session).get(order_id, for_update=True)
        if order is None or order.status != S.CONFIRMED:
            # Cancelled meanwhile: its refund is under way. Shipped: the warehouse found units
            # the stock count did not have, which an operator must reconcile.
            _log.warning(
                "stock lost after confirmation; order left as it is",
                order_id=str(order_id),
                status=None if order is None else order.status,
            )
            return
        await _cancel(tx, order, f"{RESERVATION_EXPIRED}: {reason}")
        _log.warning("paid order cancelled: its expired stock was gone", order_id=str(order_id))

    async def expire_if_unanswered(self, order_id: UUID) -> bool:
        """Cancel an order still waiting for stock or payment past its timeout; the catalog
        releases whatever it holds, and a payment that lands later is refunded."""
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.status not in AWAITING_PAYMENT:
                return False
            await _cancel(tx, order, "expired")
        _log.info("unanswered order expired", order_id=str(order_id))
        return True

    async def expire_stale_orders(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - self._pending_timeout
        async with self._uow.begin() as tx:
            stale = await OrderRepository(tx.session).in_status_since_before(
                list(AWAITING_PAYMENT), cutoff, SWEEP_BATCH
            )
        return sum([await self.expire_if_unanswered(order_id) for order_id in stale])

    async def purge_idempotency_keys(self) -> int:
        async with self._uow.begin() as tx:
            return await IdempotencyKeyRepository(tx.session).purge_expired()


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
        if state[0] == S.STOCK_RESERVED:
            state = await self._authorise(order)
        status, payment_id = state
        if status == S.PAID and payment_id is not None:
            status = await self._capture(order.id, payment_id)
        return status

    async def give_up_payment(self, order_id: UUID) -> str:
        """The provider stayed unreachable through every retry: compensate."""
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.status not in (S.STOCK_RESERVED, S.PAID):
                return "nothing to give up"
            await self._fail(tx, order, "payment provider unavailable")
        return S.PAYMENT_FAILED

    async def refund(self, order_id: UUID) -> str:
        order = await self._load(order_id)
        if order is None or not order.may_hold_money:
            return "nothing to refund"
        if order.status not in (S.CANCELLED, S.PAYMENT_FAILED):
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
            if locked.status in (S.CANCELLED, S.PAYMENT_FAILED):
                await move(tx, locked, S.REFUNDED, "payment refunded")
                tx.publish(OrderRefunded(order_id=order_id))
        _log.info("payment refunded", order_id=str(order_id))
        return S.REFUNDED

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
                [S.STOCK_RESERVED, S.PAID], cutoff, SWEEP_BATCH, by_update=True
            )
            refunding = await orders.cancelled_with_payment_since_before(cutoff, SWEEP_BATCH)
            for order_id in paying:
                _enqueue_payment(tx, order_id)
            for order_id in refunding:
                _enqueue_refund(tx, order_id)
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
            if locked.status == S.STOCK_RESERVED:
                await move(tx, locked, S.PAID, "payment authorised")
                tx.publish(OrderPaid(order_id=order.id))
            elif locked.status in (S.CANCELLED, S.PAYMENT_FAILED):
                # Cancelled or expired while the provider was answering: give the hold back.
                _enqueue_refund(tx, order.id)
        _log.info("payment authorised", order_id=str(order.id))
        return str(locked.status), payment_id

    async def _mark_authorisation_requested(self, order_id: UUID) -> Order | None:
        """The order, with the authorisation request noted first when it awaits payment (so a
        hold the provider makes is looked for even if its answer is lost)."""
        async with self._uow.begin() as tx:
            locked = await OrderRepository(tx.session).get(order_id, for_update=True)
            if (
                locked is not None
                and locked.status == S.STOCK_RESERVED
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
            if locked.status == S.PAID:
                await move(tx, locked, S.CONFIRMED, "payment captured")
                tx.publish(OrderConfirmed(order_id=order_id))
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
            if order.status in (S.STOCK_RESERVED, S.PAID):
                await self._fail(tx, order, reason)
        _log.info("payment declined", order_id=str(order_id), reason=reason)
        return str(order.status), order.payment_id

    @staticmethod
    async def _fail(tx: Transaction, order: Order, reason: str) -> None:
        await move(tx, order, S.PAYMENT_FAILED, reason)
        tx.publish(OrderPaymentFailed(order_id=order.id, reason=reason))
        if order.may_hold_money:
            _enqueue_refund(tx, order.id)


async def _cancel(tx: Transaction, order: Order, cause: str) -> None:
    """Cancel and compensate: the catalog releases what it holds on `OrderCancelled`, and the
    refund job gives back any money held or taken."""
    await move(tx, order, S.CANCELLED, cause)
    tx.publish(OrderCancelled(order_id=order.id, reason=cause))
    if order.may_hold_money:
        _enqueue_refund(tx, order.id)


def _enqueue_payment(tx: Transaction, order_id: UUID) -> None:
    tx.enqueue_after_commit(TAKE_PAYMENT_JOB, str(order_id), job_id=f"take-payment:{order_id}")


def _enqueue_refund(tx: Transaction, order_id: UUID) -> None:
    tx.enqueue_after_commit(REFUND_PAYMENT_JOB, str(order_id), job_id=f"refund:{order_id}")


def enqueue_order_email(tx: Transaction, order_id: UUID, status: str) -> None:
    tx.enqueue_after_commit(
        SEND_ORDER_EMAIL_JOB, str(order_id), str(status), job_id=f"order-email:{order_id}:{status}"
    )


def _decode_order_cursor(cursor: str) -> tuple[datetime, UUID]:
    position = decode_cursor(cursor, _CURSOR_KEYS)
    try:
        placed_at = datetime.fromisoformat(position["placed_at"])
        if placed_at.tzinfo is None:
            raise InvalidCursorError
        return placed_at.astimezone(UTC), UUID(position["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCursorError from exc
