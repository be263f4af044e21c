"""An order's life outside the payment steps: checkout, reading, cancelling and shipping, the
catalog's answers, expiry, erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger
from app.core.pagination import (
    KeysetPage,
    decode_newest_first_cursor,
    keyset_page,
    newest_first_position,
)
from app.core.security.rbac import Permission, Principal
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.contracts import OrderedItem, OrderPlaced
from app.modules.orders.exceptions import (
    DuplicateOrderLinesError,
    EmailNotVerifiedError,
    OrderNotFoundError,
)
from app.modules.orders.models import Order, OrderStatus, OrderSummary
from app.modules.orders.repository import (
    IdempotencyKeyRepository,
    OrderRepository,
    OrderSummaryRepository,
)
from app.modules.orders.service.checkout import Checkout, PlacedOrder, priced_order, replayed_order
from app.modules.orders.service.job_requests import (
    EXPIRE_ORDER_JOB,
    SWEEP_BATCH,
    enqueue_take_payment,
)
from app.modules.orders.service.transitions import (
    AWAITING_PAYMENT,
    RESERVATION_EXPIRED,
    cancel_and_refund,
    change_status,
)
from app.modules.users.contracts import UsersFacade

_log = get_logger("keystone.orders")


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

    async def place_order(self, checkout: Checkout, *, check_stock: bool = False) -> PlacedOrder:
        """`check_stock` is the `checkout-stock-precheck` flag's answer for this customer
        (app/core/flags.py): refuse now what the catalog cannot supply (see `priced_order`)."""
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
        order = await priced_order(self._catalog, checkout, check_stock=check_stock)
        async with self._uow.begin() as tx:
            claimed = await IdempotencyKeyRepository(tx.session).claim(
                checkout.customer_id,
                checkout.idempotency_key,
                checkout.request_hash,
                order.id,
                datetime.now(UTC) + self._key_ttl,
            )
            if not claimed:  # a concurrent request with this key committed first
                return await replayed_order(tx, checkout)
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
                return await replayed_order(tx, checkout)
        return None

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
    ) -> KeysetPage[OrderSummary]:
        """Newest first, from the read side; `customer_id=None` lists everyone's."""
        after = None if cursor is None else decode_newest_first_cursor(cursor, "placed_at")
        async with self._uow.begin() as tx:
            summaries = OrderSummaryRepository(tx.session)
            return await keyset_page(
                limit,
                lambda size: summaries.newest_first(size, after, customer_id, status),
                lambda row: newest_first_position("placed_at", row.placed_at, row.order_id),
            )

    # --- the customer and the warehouse ----------------------------------------------------

    async def cancel(self, order_id: UUID, owner: Principal) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.customer_id != owner.user_id:
                raise OrderNotFoundError
            await cancel_and_refund(tx, order, "cancelled by the customer")
        _log.info("order cancelled", order_id=str(order_id), refund=order.may_hold_money)
        return order

    async def ship(self, order_id: UUID) -> Order:
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None:
                raise OrderNotFoundError
            await change_status(tx, order, OrderStatus.SHIPPED, "shipped")
        return order

    # --- the saga's steps ------------------------------------------------------------------

    async def erase_customer(self, tx: Transaction, customer_id: UUID) -> None:
        """The person asked to be erased: their orders keep amounts and products for the
        books, lose the shipping address and the payment method."""
        erased = await OrderRepository(tx.session).erase_customer(customer_id)
        _log.info("customer erased on orders", customer_id=str(customer_id), orders=erased)

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
            await change_status(tx, order, OrderStatus.STOCK_RESERVED, cause)
            enqueue_take_payment(tx, order_id)
        else:
            await change_status(tx, order, OrderStatus.REJECTED, cause)

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
        await cancel_and_refund(tx, order, RESERVATION_EXPIRED)
        _log.info("order cancelled: its reservation expired", order_id=str(order_id))

    async def stock_not_retaken(self, tx: Transaction, order_id: UUID, reason: str) -> None:
        """The order was confirmed after its reservation expired, and the stock was gone by
        then: the catalog sold nothing, so the order is cancelled and what was paid refunded."""
        order = await OrderRepository(tx.session).get(order_id, for_update=True)
        if order is None or order.status != OrderStatus.CONFIRMED:
            # Cancelled meanwhile: its refund is under way. Shipped: the warehouse found units
            # the stock count did not have, which an operator must reconcile.
            _log.warning(
                "stock lost after confirmation; order left as it is",
                order_id=str(order_id),
                status=None if order is None else order.status,
            )
            return
        await cancel_and_refund(tx, order, f"{RESERVATION_EXPIRED}: {reason}")
        _log.warning("paid order cancelled: its expired stock was gone", order_id=str(order_id))

    async def expire_if_unanswered(self, order_id: UUID) -> bool:
        """Cancel an order still waiting for stock or payment past its timeout; the catalog
        releases whatever it holds, and a payment that lands later is refunded."""
        async with self._uow.begin() as tx:
            order = await OrderRepository(tx.session).get(order_id, for_update=True)
            if order is None or order.status not in AWAITING_PAYMENT:
                return False
            await cancel_and_refund(tx, order, "expired")
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
