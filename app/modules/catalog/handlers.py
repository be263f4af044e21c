"""The catalog's reactions to events: other modules' (stock for orders) and its own (the
response cache is invalidated after a write commits, whichever instance made it)."""

from __future__ import annotations

from app.core.events.base import IntegrationEvent
from app.core.events.bus import AnySubscription, RepeatableSubscription, Subscription
from app.core.events.outbox import Transaction, UnitOfWork
from app.modules.catalog.contracts import (
    CategoryChanged,
    ProductArchived,
    ProductCreated,
    ProductUpdated,
    StockChanged,
)
from app.modules.catalog.service import ProductService, StockService
from app.modules.orders.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentFailed,
    OrderPlaced,
)

PRODUCT_EVENTS: tuple[
    type[ProductCreated | ProductUpdated | ProductArchived | StockChanged], ...
] = (
    ProductCreated,
    ProductUpdated,
    ProductArchived,
    StockChanged,
)


def subscriptions(
    uow: UnitOfWork, stock: StockService, products: ProductService
) -> list[AnySubscription]:
    async def reserve_stock(event: OrderPlaced, tx: Transaction) -> None:
        lines = [(item.product_id, item.quantity) for item in event.items]
        await stock.reserve_for_order(tx, event.order_id, lines)

    async def release_stock(event: OrderCancelled, tx: Transaction) -> None:
        await stock.release_for_order(tx, event.order_id)

    async def release_unpaid_stock(event: OrderPaymentFailed, tx: Transaction) -> None:
        await stock.release_for_order(tx, event.order_id)

    async def commit_stock(event: OrderConfirmed, tx: Transaction) -> None:
        await stock.commit_for_order(tx, event.order_id)

    # Dropping a cache entry twice is harmless: no transaction, no inbox row. Redis down: this
    # raises and the event is delivered again later; the TTL bounds staleness meanwhile.
    async def evict_product(event: IntegrationEvent) -> None:
        assert isinstance(event, PRODUCT_EVENTS)
        await products.evict_cached(event.product_id)

    async def evict_listings(_: CategoryChanged) -> None:
        await products.evict_cached(None)

    return [
        Subscription(OrderPlaced, "catalog.reserve_stock", reserve_stock, uow),
        Subscription(OrderCancelled, "catalog.release_stock", release_stock, uow),
        Subscription(OrderPaymentFailed, "catalog.release_unpaid_stock", release_unpaid_stock, uow),
        Subscription(OrderConfirmed, "catalog.commit_stock", commit_stock, uow),
        *(
            RepeatableSubscription(event, "catalog.invalidate_cache", evict_product)
            for event in PRODUCT_EVENTS
        ),
        RepeatableSubscription(CategoryChanged, "catalog.invalidate_cache", evict_listings),
    ]
