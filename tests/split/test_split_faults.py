"""Faults in split mode, on real processes (tests/split/conftest.py): the catalog SIGKILLed while
customers check out on the orders service, the broker (the services' Redis) cut off while orders
are under way, and a catalog consumer SIGKILLed with entries it had read but not acknowledged.

Whatever happens, a checkout answers 201 or a 503 problem with Retry-After, never a 500 and
never a hang; every acknowledged order reaches a final status; and no effect happens twice or
is lost: per product, stock = initial - what confirmed orders took, and that is what the orders
service confirmed; no reservation is left held; one payment per order at most, captured only
for confirmed orders; no order reaches a status twice."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID, uuid4

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.core.events.streams import stream_of
from app.core.security.rbac import Role
from app.modules.orders.payments.sandbox import SandboxPayments
from tests.conftest import eventually
from tests.databases import operator_database
from tests.helpers import ORDERS, assert_problem, order_body
from tests.split.conftest import METRICS_TOKEN, Person, Service, Split, account
from tests.split.test_split_events import place, redis
from tests.split.test_split_services import new_product

ORDERS_STREAM = stream_of("orders")
FINAL = ("confirmed", "rejected", "payment_failed", "cancelled", "refunded")
# A guard against hanging, far above the peer and Redis timeouts; not a speed assertion.
NO_HANG_S = 30
SETTLE_S = 120
TRIES = 600  # a checkout's tries through an outage (with its pauses, minutes)


class Checkouts:
    """What the customers' checkouts got back: each a 201, or a 503 problem to retry later."""

    def __init__(self) -> None:
        self.placed: dict[str, str] = {}  # Idempotency-Key -> order id
        self.refused = 0

    async def place(
        self, orders: httpx.AsyncClient, customer: Person, body: dict[str, Any], key: str
    ) -> bool:
        headers = {**customer.headers, "Idempotency-Key": key}
        posting = orders.post(ORDERS, json=body, headers=headers)
        response = await asyncio.wait_for(posting, NO_HANG_S)
        if response.status_code == 201:
            order_id: str = response.json()["id"]
            assert self.placed.setdefault(key, order_id) == order_id  # a retry replays it
            return True
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
        self.refused += 1
        return False

    async def until_placed(
        self, orders: httpx.AsyncClient, customer: Person, body: dict[str, Any]
    ) -> None:
        """As a client should: the same Idempotency-Key until a 201, pausing between tries as
        Retry-After asks (capped, so the test does not idle)."""
        key = str(uuid4())
        for _ in range(TRIES):
            if await self.place(orders, customer, body, key):
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"no 201 after {TRIES} tries")


async def customers(split: Split, label: str, count: int) -> list[Person]:
    return [
        await account(split, f"customer-{label}-{n}@example.com", Role.CUSTOMER)
        for n in range(count)
    ]


async def products(split: Split, label: str, count: int, stock: int) -> dict[str, int]:
    """`count` products with `stock` each: their ids and initial stock."""
    staff = await account(split, f"staff-{label}@example.com", Role.STAFF)
    made = [await new_product(split, staff, stock=stock) for _ in range(count)]
    return {str(product["id"]): stock for product in made}


async def rows(split: Split, query: str, **params: Any) -> list[Any]:
    async with operator_database(split.runtime).session() as session:
        return list(await session.execute(text(query), params))


async def settled(split: Split, order_ids: set[str]) -> None:
    """Every order final, every event it raised delivered, every stream entry acknowledged."""
    seen: dict[str, Any] = {}

    async def over() -> bool:
        seen["statuses"] = Counter(
            status
            for (status,) in await rows(
                split,
                "SELECT status FROM orders.orders WHERE id = ANY(:ids)",
                ids=[UUID(i) for i in order_ids],
            )
        )
        seen["undelivered"] = dict(
            await rows(
                split,
                "SELECT 'orders', count(*) FROM orders.outbox WHERE dispatched_at IS NULL"
                " UNION ALL"
                " SELECT 'catalog', count(*) FROM catalog.outbox WHERE dispatched_at IS NULL",
            )
        )
        seen["pending"] = (await redis(split).xpending(ORDERS_STREAM, "catalog"))["pending"]
        final = sum(n for status, n in seen["statuses"].items() if status in FINAL)
        return (
            final == len(order_ids)
            and not any(seen["undelivered"].values())
            and not seen["pending"]
        )

    try:
        await eventually(over, timeout_s=SETTLE_S, interval_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"not settled: {seen}") from exc


async def assert_each_effect_once(
    split: Split, order_ids: set[str], stock: dict[str, int], placed_by: list[Person]
) -> None:
    ids = [UUID(i) for i in order_ids]
    emails = [person.email for person in placed_by]
    theirs = await rows(
        split,
        "SELECT o.id::text FROM orders.orders o WHERE o.customer_id IN"
        " (SELECT id FROM users.users WHERE email = ANY(:emails))",
        emails=emails,
    )
    assert {order_id for (order_id,) in theirs} == order_ids  # no order but the acknowledged
    twice = await rows(
        split,
        "SELECT order_id, status FROM orders.status_changes WHERE order_id = ANY(:ids)"
        " GROUP BY order_id, status HAVING count(*) > 1",
        ids=ids,
    )
    assert twice == []
    held = await rows(
        split,
        "SELECT order_id FROM catalog.reservations WHERE status = 'reserved'"
        " AND order_id = ANY(:ids)",
        ids=ids,
    )
    assert held == []
    sold = dict(
        await rows(
            split,
            "SELECT l.product_id::text, sum(l.quantity) FROM catalog.reservation_lines l"
            " JOIN catalog.reservations r USING (order_id)"
            " WHERE r.status = 'committed' AND r.order_id = ANY(:ids) GROUP BY l.product_id",
            ids=ids,
        )
    )
    confirmed = dict(
        await rows(
            split,
            "SELECT l.product_id::text, sum(l.quantity) FROM orders.order_lines l"
            " JOIN orders.orders o ON o.id = l.order_id"
            " WHERE o.status = 'confirmed' AND o.id = ANY(:ids) GROUP BY l.product_id",
            ids=ids,
        )
    )
    left = dict(
        await rows(
            split,
            "SELECT id::text, stock FROM catalog.products WHERE id = ANY(:ids)",
            ids=[UUID(p) for p in stock],
        )
    )
    for product_id, initial in stock.items():
        taken = sold.get(product_id, 0)
        assert (left[product_id], taken) == (initial - taken, confirmed.get(product_id, 0))
    await _assert_paid_once(split, order_ids)


async def _assert_paid_once(split: Split, order_ids: set[str]) -> None:
    """The sandbox provider's own records (in Redis): one payment per order at most, and a
    captured one exactly for each confirmed order."""
    payments = await SandboxPayments(lambda: redis(split), slow_s=0).payments(limit=100_000)
    ours = [p for p in payments if p["reference"] in order_ids]
    per_order = Counter(p["reference"] for p in ours)
    assert max(per_order.values(), default=0) <= 1, per_order.most_common(3)
    captured = {p["reference"] for p in ours if p["status"] == "succeeded"}
    confirmed = await rows(
        split,
        "SELECT id::text FROM orders.orders WHERE status = 'confirmed' AND id = ANY(:ids)",
        ids=[UUID(i) for i in order_ids],
    )
    assert captured == {order_id for (order_id,) in confirmed}


@asynccontextmanager
async def row_locked(split: Split, product_id: str) -> AsyncIterator[None]:
    """The product's row locked, as a long stock write holds it: a reservation of it waits."""
    async with operator_database(split.runtime).sessions() as session:
        await session.execute(
            text("SELECT 1 FROM catalog.products WHERE id = :id FOR UPDATE"),
            {"id": UUID(product_id)},
        )
        yield
        await session.rollback()


async def catalog_holds_entries(split: Split) -> dict[str, int]:
    """Consumers of the catalog's group with entries of orders' stream read, not acknowledged."""
    summary = await redis(split).xpending(ORDERS_STREAM, "catalog")
    return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"] or ()}


# --- the catalog killed during checkouts -----------------------------------------------------

CLIENTS = 6
ORDERS_EACH = 4
KILL_AFTER = 5  # orders acknowledged before the catalog dies


async def test_the_catalog_killed_during_checkouts_loses_and_repeats_nothing(
    split: Split, services: dict[str, Service]
) -> None:
    stock = await products(split, "f1", 3, stock=8)  # fewer than ordered: some are rejected
    shoppers = await customers(split, "f1", CLIENTS)
    checkouts = Checkouts()

    async def shop(customer: Person, rng: random.Random) -> None:
        async with split.client("orders") as orders:
            for _ in range(ORDERS_EACH):
                body = order_body((rng.choice(list(stock)), rng.randint(1, 2)))
                await checkouts.until_placed(orders, customer, body)

    shopping = asyncio.gather(*(shop(c, random.Random(n)) for n, c in enumerate(shoppers)))
    catalog = services["catalog"]

    async def placed_some() -> bool:
        return len(checkouts.placed) >= KILL_AFTER

    async def refused_some() -> bool:
        return checkouts.refused >= CLIENTS

    try:
        await eventually(placed_some, timeout_s=60)
        catalog.kill()
        await eventually(refused_some, timeout_s=60)  # the customers met the outage
        catalog.start()  # on the same port
        await asyncio.to_thread(catalog.ready)
        await asyncio.wait_for(shopping, timeout=SETTLE_S)
    except BaseException:
        shopping.cancel()
        await asyncio.gather(shopping, return_exceptions=True)
        raise

    order_ids = set(checkouts.placed.values())
    assert len(order_ids) == CLIENTS * ORDERS_EACH
    await settled(split, order_ids)
    await assert_each_effect_once(split, order_ids, stock, shoppers)


# --- the broker down -------------------------------------------------------------------------


async def scrape(service: Service) -> dict[str, float]:
    """The service's `keystone_events_undelivered` gauge, per module."""
    async with httpx.AsyncClient(base_url=service.url, timeout=NO_HANG_S) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return {
        sample.labels["module"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "keystone_events_undelivered"
    }


async def held_in_outbox(split: Split) -> list[tuple[str, str, int]]:
    """The catalog's undelivered outbox rows: event type, id, tries so far."""
    return [
        (event_type, str(event_id), attempts)
        for event_type, event_id, attempts in await rows(
            split,
            "SELECT event_type, event_id, attempts FROM catalog.outbox WHERE dispatched_at IS NULL",
        )
    ]


async def test_the_broker_down_holds_events_in_the_outbox_until_it_is_back(
    split: Split, services: dict[str, Service]
) -> None:
    stock = await products(split, "f2", 1, stock=10)
    (product,) = stock
    (customer,) = await customers(split, "f2", 1)
    body = order_body((product, 1))
    checkouts = Checkouts()

    # An order whose stock the catalog is reserving when the broker goes: the reservation
    # commits during the outage, with the events that answer the order.
    async with row_locked(split, product), split.client("orders") as orders:
        assert await checkouts.place(orders, customer, body, "f2-before")

        async def read_by_the_catalog() -> bool:
            return bool(await catalog_holds_entries(split))

        await eventually(read_by_the_catalog, timeout_s=NO_HANG_S)
        split.broker.cut()

    async def held() -> bool:
        waiting = await held_in_outbox(split)
        return any(kind == "catalog.StockReserved" and tries > 0 for kind, _, tries in waiting)

    await eventually(held, timeout_s=NO_HANG_S)  # tried, failed, kept
    held_ids = {event_id for _, event_id, _ in await held_in_outbox(split)}
    assert (await scrape(services["catalog"]))["catalog"] >= 1
    async with split.client("catalog") as catalog:
        ready = await asyncio.wait_for(catalog.get("/readyz"), NO_HANG_S)
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("failed")

    async with split.client("orders") as orders:
        # Once the orders service has noticed, a checkout cannot have its token checked against
        # the deny-list: refused, clearly.
        async def refusing() -> bool:
            listing = await orders.get(ORDERS, headers=customer.headers)
            return listing.status_code == 503

        await eventually(refusing, timeout_s=NO_HANG_S)
        assert not await checkouts.place(orders, customer, body, "f2-during")
        split.broker.start()
        await checkouts.until_placed(orders, customer, body)

    order_ids = set(checkouts.placed.values())
    await settled(split, order_ids)
    # Nobody restarted anything: every process waited the outage out and carried on.
    assert all(process.running for process in [*services.values(), *split.workers.values()])
    delivered = await rows(
        split,
        "SELECT event_id::text FROM catalog.outbox"
        " WHERE dispatched_at IS NOT NULL AND event_id = ANY(:ids)",
        ids=[UUID(i) for i in held_ids],
    )
    assert {event_id for (event_id,) in delivered} == held_ids
    await assert_each_effect_once(split, order_ids, stock, [customer])


# --- a consumer killed with entries in hand --------------------------------------------------

# Longer than the test needs to see who holds an entry and kill it, so a running consumer does
# not take the entries over first; the survivor takes them this long after their last reading.
CLAIM_IDLE_MS = 5_000


def consumer_of(service: Service) -> str:
    """Its name in consumer groups (app.core.events.consumer.consumer_name)."""
    return f"{socket.gethostname()}-{service.pid}"


@contextmanager
def two_catalog_consumers(split: Split) -> Iterator[list[Service]]:
    """The catalog's API (on its port: orders still reach it) and a catalog worker, two
    consumers of the catalog's group, in place of the API alone."""
    api = split.services["catalog"]
    api.stop()
    env = {**api.env, "EVENT_STREAM_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS)}
    logs = api.log.parent
    consumers = [
        Service("catalog", api.port, env, logs / "catalog-slow-claim.log"),
        Service("catalog", None, env, logs / "catalog-worker.log"),
    ]
    try:
        for consumer in consumers:
            consumer.start()
        for consumer in consumers:
            consumer.ready()
        yield consumers
    finally:
        for consumer in consumers:
            consumer.stop()


async def test_a_consumer_killed_with_entries_in_hand_has_them_reclaimed_by_another(
    split: Split, services: dict[str, Service]
) -> None:
    stock = await products(split, "f3", 1, stock=10)
    (product,) = stock
    (customer,) = await customers(split, "f3", 1)
    with two_catalog_consumers(split) as consumers:
        names = {consumer_of(c): c for c in consumers}
        async with row_locked(split, product):
            order_ids = {await place(split, customer, {"id": product}, 1) for _ in range(3)}

            async def held_by_one() -> bool:
                return bool(names.keys() & (await catalog_holds_entries(split)).keys())

            await eventually(held_by_one, timeout_s=NO_HANG_S)
            holder = min(names.keys() & (await catalog_holds_entries(split)).keys())
            names[holder].kill()
        (survivor,) = [c for name, c in names.items() if name != holder]

        in_hand = await redis(split).xpending_range(
            ORDERS_STREAM, "catalog", min="-", max="+", count=100, consumername=holder
        )
        assert in_hand, "the killed consumer had no entry in hand"
        await settled(split, order_ids)
        left = await redis(split).xpending_range(
            ORDERS_STREAM, "catalog", min="-", max="+", count=100, consumername=holder
        )
        assert left == []
        assert survivor.running

        async def forgotten() -> bool:
            group = await redis(split).xinfo_consumers(ORDERS_STREAM, "catalog")
            return holder not in {consumer["name"].decode() for consumer in group}

        # Its entries handled, the dead consumer's name goes too (a restart is a new name).
        await eventually(forgotten, timeout_s=NO_HANG_S)
    await assert_each_effect_once(split, order_ids, stock, [customer])
