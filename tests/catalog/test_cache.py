"""The response cache in front of product reads: served from Redis, invalidated by the
catalog's events after commit (also across instances), ETags, and Redis outages that cost
nothing but speed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from app.bootstrap import build_runtime, truncate_all
from app.core.cache import ResponseCache
from app.core.config import Settings
from app.core.security.rbac import Role
from app.main import create_app
from app.modules.catalog.schemas import ProductCreate, ProductUpdate
from devtools.servers import EmbeddedRedis, start_redis
from tests.conftest import Servers, UserFactory, eventually, make_settings
from tests.helpers import CATEGORIES, PRODUCTS, create_product, events_delivered, get_product

# Well under the cache TTLs of the test settings (60 s / 10 s): a test that waits this long
# for a change proves invalidation, not expiry.
BOUND_S = 5.0


def cache_of(app: FastAPI) -> ResponseCache:
    cache: ResponseCache = app.state.core.cache()
    return cache


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def shows(client: httpx.AsyncClient, product_id: str, **expected: Any) -> bool:
    product = await get_product(client, product_id)
    return all(product[key] == value for key, value in expected.items())


# --- served from Redis -----------------------------------------------------------------------


async def test_a_product_read_is_served_from_the_cache(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, redis: Redis
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)
    await events_delivered(app)
    stats = cache_of(app).stats
    hits = stats.hits

    first = await client.get(f"{PRODUCTS}/{product['id']}")
    second = await client.get(f"{PRODUCTS}/{product['id']}")

    assert first.content == second.content
    assert await redis.get(f"catalog:product:{product['id']}") == first.content
    assert stats.hits == hits + 1


async def test_the_first_page_of_a_listing_is_cached_later_pages_are_not(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, redis: Redis
) -> None:
    staff = await make_user(Role.STAFF)
    for _ in range(3):
        await create_product(client, staff)
    await events_delivered(app)

    first = await client.get(PRODUCTS, params={"limit": 2})
    await client.get(PRODUCTS, params={"limit": 2, "cursor": first.json()["next_cursor"]})

    cached = [await redis.get(key) async for key in redis.scan_iter("catalog:list:*")]
    assert cached == [first.content]


async def test_concurrent_misses_compute_once(app: FastAPI) -> None:
    cache = cache_of(app)
    computed = 0
    release = asyncio.Event()

    async def compute() -> bytes:
        nonlocal computed
        computed += 1
        await release.wait()
        return b'{"slow": true}'

    readers = [
        asyncio.create_task(cache.get_or_compute("stampede", 60, compute)) for _ in range(20)
    ]

    async def computing() -> bool:
        return computed > 0

    # Released once the computation runs (after its Redis read): by then every reader has
    # started and either computes or waits for it. A fixed sleep let a slow Redis (a loaded
    # machine) finish before the others had looked.
    await eventually(computing)
    release.set()

    assert await asyncio.gather(*readers) == [b'{"slow": true}'] * 20
    assert computed == 1


async def test_concurrent_reads_of_an_expired_local_copy_ask_redis_once(
    app: FastAPI, redis: Redis
) -> None:
    cache = cache_of(app)

    async def compute() -> bytes:
        return b'{"hot": true}'

    await cache.get_or_compute("hot", 60, compute)  # now in Redis and in the local copy
    cache.clear_local()  # as when the local copy expires
    gets_before = await redis_gets(redis)

    readers = [asyncio.create_task(cache.get_or_compute("hot", 60, compute)) for _ in range(20)]

    assert await asyncio.gather(*readers) == [b'{"hot": true}'] * 20
    assert await redis_gets(redis) - gets_before == 1


async def redis_gets(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def test_a_failed_computation_fails_its_waiters_and_is_retried(app: FastAPI) -> None:
    cache = cache_of(app)
    release = asyncio.Event()
    started = 0

    async def broken() -> bytes:
        nonlocal started
        started += 1
        await release.wait()
        raise RuntimeError("database hiccup")

    async def computing() -> bool:
        return started > 0

    readers = [asyncio.create_task(cache.get_or_compute("flaky", 60, broken)) for _ in range(3)]
    # The others joined while the first read Redis, before it began computing.
    await eventually(computing)
    release.set()
    results = await asyncio.gather(*readers, return_exceptions=True)

    assert all(isinstance(result, RuntimeError) for result in results)
    assert started == 1  # the waiters shared the failure, they did not compute again

    async def healthy() -> bytes:
        return b"ok"

    assert await cache.get_or_compute("flaky", 60, healthy) == b"ok"


# --- ETag ----------------------------------------------------------------------------------


async def test_etag_and_cache_control(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)

    response = await client.get(f"{PRODUCTS}/{product['id']}")

    assert response.headers["etag"].startswith('"')
    assert response.headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("form", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_if_none_match_with_the_current_etag_is_a_304(
    client: httpx.AsyncClient, make_user: UserFactory, form: str
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)
    url = f"{PRODUCTS}/{product['id']}"
    etag = (await client.get(url)).headers["etag"]

    response = await client.get(url, headers={"If-None-Match": form.format(etag=etag)})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


async def test_a_changed_product_gets_a_new_etag(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk")
    url = f"{PRODUCTS}/{product['id']}"
    old = (await client.get(url)).headers["etag"]

    await client.patch(url, json={"name": "Oak desk"}, headers=staff.headers)

    async def revalidated() -> bool:
        response = await client.get(url, headers={"If-None-Match": old})
        return response.status_code == 200 and response.json()["name"] == "Oak desk"

    await eventually(revalidated, timeout_s=BOUND_S)
    assert (await client.get(url)).headers["etag"] != old


async def test_an_etag_of_another_product_is_no_match(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    one = await create_product(client, staff)
    other = await create_product(client, staff)
    etag = (await client.get(f"{PRODUCTS}/{one['id']}")).headers["etag"]

    response = await client.get(f"{PRODUCTS}/{other['id']}", headers={"If-None-Match": etag})

    assert response.status_code == 200


# --- invalidation after commit -------------------------------------------------------------


async def test_a_write_reaches_readers_within_the_bound(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk", stock=3)
    url = f"{PRODUCTS}/{product['id']}"
    await get_product(client, product["id"])  # now cached

    await client.patch(url, json={"name": "Oak desk"}, headers=staff.headers)
    await eventually(lambda: shows(client, product["id"], name="Oak desk"), timeout_s=BOUND_S)

    await client.put(f"{url}/stock", json={"on_hand": 9}, headers=staff.headers)
    await eventually(lambda: shows(client, product["id"], stock=9), timeout_s=BOUND_S)


async def test_listings_see_new_changed_and_archived_products_within_the_bound(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    old = await create_product(client, staff, name="Old")

    async def listed() -> list[str]:
        response = await client.get(PRODUCTS)
        return [item["name"] for item in response.json()["items"]]

    assert await listed() == ["Old"]  # now cached
    await create_product(client, staff, name="New")

    async def new_is_listed() -> bool:
        return await listed() == ["New", "Old"]

    await eventually(new_is_listed, timeout_s=BOUND_S)
    await client.delete(f"{PRODUCTS}/{old['id']}", headers=staff.headers)

    async def old_is_gone() -> bool:
        return await listed() == ["New"]

    await eventually(old_is_gone, timeout_s=BOUND_S)


async def test_moving_a_category_reaches_cached_category_listings(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    coffee = (await client.post(CATEGORIES, json={"name": "Coffee"}, headers=staff.headers)).json()
    beans = (await client.post(CATEGORIES, json={"name": "Beans"}, headers=staff.headers)).json()
    product = await create_product(client, staff, category_id=beans["id"])

    async def in_coffee() -> list[str]:
        response = await client.get(PRODUCTS, params={"category_id": coffee["id"]})
        return [item["id"] for item in response.json()["items"]]

    assert await in_coffee() == []  # now cached
    await client.patch(
        f"{CATEGORIES}/{beans['id']}", json={"parent_id": coffee["id"]}, headers=staff.headers
    )

    async def moved() -> bool:
        return await in_coffee() == [product["id"]]

    await eventually(moved, timeout_s=BOUND_S)


async def test_a_write_on_one_instance_reaches_readers_of_another(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, make_user: UserFactory
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk")
    await events_delivered(app)
    other = create_app(settings)  # same Postgres, same Redis: a second replica
    async with LifespanManager(other), client_for(other) as elsewhere:
        assert (await get_product(elsewhere, product["id"]))["name"] == "Desk"
        hits = cache_of(other).stats.hits
        assert (await get_product(elsewhere, product["id"]))["name"] == "Desk"
        assert cache_of(other).stats.hits == hits + 1  # the other instance reads the cache

        response = await client.patch(
            f"{PRODUCTS}/{product['id']}", json={"name": "Oak desk"}, headers=staff.headers
        )
        assert response.status_code == 200, response.text

        await eventually(
            lambda: shows(elsewhere, product["id"], name="Oak desk"), timeout_s=BOUND_S
        )


async def test_the_catalogs_events_alone_invalidate_another_instances_cache(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, make_user: UserFactory
) -> None:
    """A writer whose own invalidation reaches nothing (its cache is off, its relay not
    running): only the ProductUpdated event, delivered by a relay, can drop the Redis copy the
    reader serves, and the reader keeps no local copy to hide behind."""
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff, name="Desk")
    await events_delivered(app)
    reader = create_app(
        make_settings(
            settings.require_database_url(), settings.require_redis_url(), cache_local_ttl_s=0
        )
    )
    writer = build_runtime(
        make_settings(
            settings.require_database_url(), settings.require_redis_url(), cache_enabled=False
        )
    )
    try:
        async with LifespanManager(reader), client_for(reader) as http:
            assert (await get_product(http, product["id"]))["name"] == "Desk"
            hits = cache_of(reader).stats.hits
            assert (await get_product(http, product["id"]))["name"] == "Desk"
            assert cache_of(reader).stats.hits == hits + 1  # served from Redis

            await (
                writer.module("catalog")
                .container.products()
                .update_product(UUID(product["id"]), ProductUpdate(name="Oak desk"))
            )

            await eventually(lambda: shows(http, product["id"], name="Oak desk"), timeout_s=BOUND_S)
    finally:
        await writer.stop()


# --- Redis down ----------------------------------------------------------------------------


@pytest.fixture
async def outage(servers: Servers, tmp_path: Path) -> AsyncIterator[tuple[Settings, EmbeddedRedis]]:
    """A database of its own (no other test app's relay may deliver its events) and a Redis
    that keeps its data when stopped (append-only file), to come back with what it held."""
    redis = start_redis(tmp_path / "redis", persist=True)
    url = await servers.migrated_database("keystone_cache_outage")
    try:
        yield (
            make_settings(
                url,
                redis.url,
                cache_retry_after_s=0,
                cache_timeout_s=0.5,
                cache_local_ttl_s=0,  # every read goes to Redis, so the outage is what it sees
                # Retries 1, 2, 4 s apart: Redis is back before the next one.
                event_retry_base_s=1,
            ),
            redis,
        )
    finally:
        redis.stop()


async def test_redis_down_reads_come_from_postgres_and_the_invalidation_is_retried(
    outage: tuple[Settings, EmbeddedRedis], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, redis = outage
    app = create_app(settings)
    stats = cache_of(app).stats
    async with LifespanManager(app), client_for(app) as http:
        runtime = app.state.runtime
        await truncate_all(runtime)
        products = runtime.module("catalog").container.products()
        product = await products.create_product(
            ProductCreate(sku="DESK-1", name="Desk", price=Decimal("10.00"), currency="EUR")
        )
        await events_delivered(app)
        assert (await get_product(http, str(product.id)))["name"] == "Desk"  # now in Redis
        redis.stop()

        await products.update_product(product.id, ProductUpdate(name="Oak desk"))
        down = await http.get(f"{PRODUCTS}/{product.id}")
        assert down.status_code == 200
        assert down.json()["name"] == "Oak desk"  # from Postgres
        assert stats.backend_errors >= 1
        assert "cache unavailable" in capsys.readouterr().out
        # Down for longer than the invalidation may take: the relay has tried the event.
        await eventually(lambda: update_tried(app), timeout_s=BOUND_S)

        # Redis comes back holding the old copy: only the retried delivery of the
        # ProductUpdated event can drop it (the writer's own invalidation failed for good).
        redis = start_redis(tmp_path / "redis", persist=True, port=redis.port)
        try:
            assert await holds(redis, f"catalog:product:{product.id}", b'"Desk"')
            await events_delivered(app)
            assert not await holds(redis, f"catalog:product:{product.id}", b"")
            assert await update_attempts(app) >= 1  # dropped by a retried delivery
            await eventually(
                lambda: shows(http, str(product.id), name="Oak desk"), timeout_s=BOUND_S
            )
            hits = stats.hits
            assert (await get_product(http, str(product.id)))["name"] == "Oak desk"
            assert stats.hits == hits + 1  # served from the returned Redis again
        finally:
            redis.stop()


async def holds(redis: EmbeddedRedis, key: str, fragment: bytes) -> bool:
    """Whether Redis has `key`, its value containing `fragment`."""
    client = Redis.from_url(redis.url)
    try:
        value = await client.get(key)
    finally:
        await client.aclose()
    return value is not None and fragment in value


async def update_attempts(app: FastAPI) -> int:
    """Failed deliveries of the ProductUpdated event so far."""
    async with app.state.runtime.module("catalog").uow.database.session() as session:
        attempts = await session.scalar(
            text("SELECT attempts FROM catalog.outbox WHERE event_type = 'catalog.ProductUpdated'")
        )
    return int(attempts or 0)


async def update_tried(app: FastAPI) -> bool:
    """Whether the relay has tried the ProductUpdated event: failed once, or delivered it."""
    async with app.state.runtime.module("catalog").uow.database.session() as session:
        tried = await session.scalar(
            text(
                "SELECT attempts > 0 OR dispatched_at IS NOT NULL FROM catalog.outbox"
                " WHERE event_type = 'catalog.ProductUpdated'"
            )
        )
    return bool(tried)
