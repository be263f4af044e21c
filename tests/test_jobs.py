"""Jobs and crons run by a real arq worker against real Redis: orders nobody answered for expire,
through the per-order deferred job and through the cron safety net."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import text, update

from app.bootstrap import build_runtime, truncate_all
from app.core.config import ALL_MODULES, Settings
from app.core.jobs import JobQueue, JobRequest, owning_module
from app.modules.catalog.schemas import ProductCreate
from app.modules.catalog.service import ProductService
from app.modules.orders.models import Order
from app.modules.orders.service import Checkout, OrderService
from app.runtime import Runtime
from app.worker.workers import Workers
from tests.conftest import Servers, make_settings, queued_jobs, run_worker_burst
from tests.databases import operator_database

# Long enough that a busy CI machine finishes a payment first; the expiry test waits it out.
PENDING_TIMEOUT_S = 3


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    """A database and a Redis db of their own, so no other relay or test touches these jobs."""
    url = await servers.migrated_database("keystone_jobs")
    return make_settings(
        url,
        servers.redis_database(3),
        order_pending_timeout_s=PENDING_TIMEOUT_S,
        # The orders here belong to made-up customers: the checkout rule is tested elsewhere.
        require_verified_email_for_orders=False,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    yield runtime
    await runtime.stop()


def catalog_products(runtime: Runtime) -> ProductService:
    service: ProductService = runtime.module("catalog").container.products()
    return service


def order_service(runtime: Runtime) -> OrderService:
    service: OrderService = runtime.module("orders").container.orders()
    return service


def checkout(customer: int, product_id: UUID, quantity: int) -> Checkout:
    return Checkout(
        customer_id=UUID(int=customer),
        idempotency_key=f"job-test-{customer}-{product_id}",
        items=[(product_id, quantity)],
        shipping_address={"name": "A", "line1": "B", "postal_code": "1", "city": "C"},
        payment_method="pm_card_visa",
    )


async def place_stuck_order(runtime: Runtime) -> UUID:
    """An order whose OrderPlaced was consumed but never answered: it stays pending."""
    products, orders = catalog_products(runtime), order_service(runtime)
    product = await products.create_product(
        ProductCreate(sku="JOB-1", name="Kettle", price=Decimal("30.00"), currency="EUR", stock=5)
    )
    placed = await orders.place_order(checkout(7, product.id, 2))
    async with operator_database(runtime).session() as session:
        await session.execute(text("UPDATE orders.outbox SET dispatched_at = now()"))
    return placed.order.id


async def order_state(runtime: Runtime, order_id: UUID) -> tuple[str, list[str]]:
    order = await order_service(runtime).get_order(order_id, _any_reader())
    return order.status, [change.cause for change in order.history]


def _any_reader():  # type: ignore[no-untyped-def]
    from app.core.security.rbac import Principal, Role

    return Principal(user_id=UUID(int=1), roles=frozenset({Role.STAFF}))


async def reservation_status(runtime: Runtime, order_id: UUID) -> str | None:
    async with operator_database(runtime).session() as session:
        return await session.scalar(
            text("SELECT status FROM catalog.reservations WHERE order_id = :id"), {"id": order_id}
        )


async def test_deferred_job_expires_an_unanswered_order(
    settings: Settings, runtime: Runtime
) -> None:
    order_id = await place_stuck_order(runtime)
    queued = [job.job_id for job in await queued_jobs(settings, "orders")]
    assert f"expire-order:{order_id}" in queued  # sent after commit, deferred, to orders' queue

    await asyncio.sleep(PENDING_TIMEOUT_S + 0.2)
    await run_worker_burst(settings, runtime)

    assert await order_state(runtime, order_id) == ("cancelled", ["placed", "expired"])
    # OrderCancelled reached the catalog through the worker's relay: nothing stays reserved.
    assert await reservation_status(runtime, order_id) == "released"


async def test_cron_expires_stale_orders_whose_job_was_lost(
    settings: Settings, runtime: Runtime
) -> None:
    order_id = await place_stuck_order(runtime)
    await runtime.core.redis().flushdb()  # the deferred job is lost
    async with operator_database(runtime).session() as session:
        await session.execute(update(Order).values(created_at=text("now() - interval '1 hour'")))

    await run_worker_burst(settings, runtime)

    assert await order_state(runtime, order_id) == ("cancelled", ["placed", "expired"])


async def test_a_job_is_not_sent_when_its_transaction_rolls_back(
    settings: Settings, runtime: Runtime
) -> None:
    with pytest.raises(RuntimeError):
        async with runtime.module("orders").uow.begin() as tx:
            tx.enqueue_after_commit("orders.expire_order", "x", job_id="never-sent")
            raise RuntimeError("rolled back")
    for module in ALL_MODULES:
        assert await queued_jobs(settings, module) == []


async def test_a_confirmed_order_is_left_alone_by_its_expiry_job(
    settings: Settings, runtime: Runtime
) -> None:
    products, orders = catalog_products(runtime), order_service(runtime)
    product = await products.create_product(
        ProductCreate(sku="JOB-2", name="Mug", price=Decimal("8.00"), currency="EUR", stock=5)
    )
    order = (await orders.place_order(checkout(8, product.id, 1))).order
    while await runtime.relay.run_once():  # OrderPlaced -> StockReserved -> stock_reserved
        pass
    assert (await order_state(runtime, order.id))[0] == "stock_reserved"

    # The payment job is ready at once; the expiry job only after the pending timeout.
    await run_worker_burst(settings, runtime)

    assert await order_state(runtime, order.id) == (
        "confirmed",
        ["placed", "stock reserved", "payment authorised", "payment captured"],
    )
    while await runtime.relay.run_once():
        pass
    assert await reservation_status(runtime, order.id) == "committed"


async def reserve_and_lose_the_payment_job(runtime: Runtime, sku: str) -> UUID:
    """An order whose stock is reserved, but whose payment job Redis lost."""
    products, orders = catalog_products(runtime), order_service(runtime)
    product = await products.create_product(
        ProductCreate(sku=sku, name="Pot", price=Decimal("9.00"), currency="EUR", stock=5)
    )
    order = (await orders.place_order(checkout(9, product.id, 1))).order
    while await runtime.relay.run_once():
        pass
    await runtime.core.redis().flushdb()
    return order.id


async def test_cron_expires_an_order_stuck_waiting_for_payment_and_releases_its_stock(
    settings: Settings, runtime: Runtime
) -> None:
    order_id = await reserve_and_lose_the_payment_job(runtime, "JOB-3")
    async with operator_database(runtime).session() as session:
        await session.execute(update(Order).values(created_at=text("now() - interval '1 hour'")))

    await run_worker_burst(settings, runtime)

    assert await order_state(runtime, order_id) == (
        "cancelled",
        ["placed", "stock reserved", "expired"],
    )
    assert await reservation_status(runtime, order_id) == "released"


async def test_cron_resends_a_lost_payment_job(settings: Settings, runtime: Runtime) -> None:
    order_id = await reserve_and_lose_the_payment_job(runtime, "JOB-4")
    async with operator_database(runtime).session() as session:  # quiet for longer than the redrive
        await session.execute(update(Order).values(updated_at=text("now() - interval '5 minutes'")))

    await run_worker_burst(settings, runtime)
    while await runtime.relay.run_once():  # OrderConfirmed -> the catalog commits the stock
        pass

    assert (await order_state(runtime, order_id))[0] == "confirmed"
    assert await reservation_status(runtime, order_id) == "committed"


async def test_a_payment_retried_after_a_crash_replays_the_sandbox_intent(
    runtime: Runtime,
) -> None:
    """The worker authorised at the sandbox, then died before saving the payment id: the retry
    asks again with the same idempotency key and gets the same intent, which it captures. One
    payment exists for the order, and it is the one the order keeps."""
    order_id = await reserve_and_lose_the_payment_job(runtime, "JOB-5")
    order = await order_service(runtime).get_order(order_id, _any_reader())
    sandbox = runtime.module("orders").container.payments()
    held_before_the_crash = await sandbox.authorise(
        idempotency_key=str(order_id),  # what the saga sends (PaymentSaga._authorise_at_provider)
        reference=str(order_id),
        amount=order.total,
        currency=order.currency,
        payment_method=order.payment_method,
    )

    saga = runtime.module("orders").container.saga()
    assert await saga.take_payment(order_id) == "confirmed"

    async with operator_database(runtime).session() as session:
        kept = await session.scalar(
            text("SELECT payment_id FROM orders.orders WHERE id = :id"), {"id": order_id}
        )
    assert kept == held_before_the_crash
    [payment] = await sandbox.payments(limit=10, reference=str(order_id))
    assert (payment["id"], payment["status"], payment["amount"]) == (kept, "succeeded", 900)


async def test_cron_purges_expired_idempotency_keys(settings: Settings, runtime: Runtime) -> None:
    await place_stuck_order(runtime)
    async with operator_database(runtime).session() as session:
        await session.execute(text("UPDATE orders.idempotency_keys SET expires_at = now()"))

    assert await order_service(runtime).purge_idempotency_keys() == 1

    async with operator_database(runtime).session() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders.idempotency_keys")) == 0


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: a hung Redis."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in accepted:
        writer.close()
    server.close()


async def test_enqueue_gives_up_instead_of_hanging_on_a_silent_redis(
    settings: Settings, silent_redis: str
) -> None:
    queue = JobQueue(
        settings.model_copy(update={"redis_url": silent_redis, "redis_timeout_s": 0.3})
    )
    with pytest.raises(TimeoutError):
        await queue.enqueue(JobRequest(name="orders.expire_order", args=("x",)))
    await queue.close()


async def test_each_job_goes_to_its_modules_queue_and_only_its_workers_run_it(
    settings: Settings, runtime: Runtime
) -> None:
    order_id = await place_stuck_order(runtime)
    jobs = runtime.core.jobs()
    await jobs.enqueue(JobRequest("orders.expire_order", (str(order_id),), job_id="expire-now"))
    await jobs.enqueue(JobRequest("users.send_password_reset", (str(UUID(int=9)),)))
    assert [job.function for job in await queued_jobs(settings, "users")] == [
        "users.send_password_reset"
    ]
    assert "expire-now" in [job.job_id for job in await queued_jobs(settings, "orders")]

    # The other modules are "served elsewhere": nothing here calls them.
    elsewhere = {f"{module}_url": "http://127.0.0.1:9" for module in ALL_MODULES}
    users_only = settings.model_copy(update={"worker_modules": ["users"], **elsewhere})
    users_worker = Workers(users_only, burst=True, poll_delay_s=0.05)
    assert users_worker.queues == ["keystone:users"]
    await users_worker.run()
    assert await queued_jobs(settings, "users") == []
    assert await order_state(runtime, order_id) == ("pending", ["placed"])  # not its job

    orders_only = settings.model_copy(update={"worker_modules": ["orders"], **elsewhere})
    orders_worker = Workers(orders_only, burst=True, poll_delay_s=0.05)
    assert orders_worker.queues == ["keystone:orders"]
    await orders_worker.run()
    assert await order_state(runtime, order_id) == ("cancelled", ["placed", "expired"])


def test_a_job_name_must_name_its_module() -> None:
    with pytest.raises(ValueError, match=r"must be '<module>\.<job>'"):
        owning_module("expire_order")
