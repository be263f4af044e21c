"""Rate limits: per client IP everywhere, tighter per IP and per account on the auth routes,
shared through Redis, honest about the client address, and never a 500 when Redis is down."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from app.core.ratelimit.leases import LEASE_MAX_HITS, LEASE_MAX_S, LEASE_SHARE
from app.core.ratelimit.sliding_window import RateLimiter
from app.main import create_app
from devtools.servers import free_port
from tests.conftest import Servers, http_client, make_settings
from tests.helpers import CATEGORIES, assert_problem

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def limited_app(servers: Servers, database_url: str, redis: Redis) -> AppFactory:
    """An app of its own with the given settings, on a Redis emptied of earlier counters."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[FastAPI]:
        await redis.flushdb()
        overrides.setdefault("redis_url", servers.redis_url)
        settings = make_settings(database_url, **overrides)
        app = create_app(settings)
        async with LifespanManager(app):
            yield app

    return build


def assert_rate_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == str(remaining)
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60


async def test_default_limit_answers_429_with_headers_after_n_requests(
    limited_app: AppFactory,
) -> None:
    async with limited_app(rate_limit_default="3/minute") as app, http_client(app) as http:
        for remaining in (2, 1, 0):
            allowed = await http.get(CATEGORIES)
            assert allowed.status_code == 200
            assert_rate_headers(allowed, 3, remaining)

        refused = await http.get(CATEGORIES)
        body = assert_problem(refused, 429, "too-many-requests")
        assert_rate_headers(refused, 3, 0)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["retry-after"] in body["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"


async def test_a_browser_may_read_the_limit_headers(limited_app: AppFactory) -> None:
    settings = {"rate_limit_default": "1/minute", "cors_origins": ["https://shop.example"]}
    async with limited_app(**settings) as app, http_client(app) as http:
        origin = {"Origin": "https://shop.example"}
        await http.get(CATEGORIES, headers=origin)
        refused = await http.get(CATEGORIES, headers=origin)
    assert_problem(refused, 429)
    assert refused.headers["access-control-allow-origin"] == "https://shop.example"
    expose = refused.headers["access-control-expose-headers"]
    exposed = {name.strip().lower() for name in expose.split(",")}
    assert {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= exposed


async def test_the_limit_is_per_client_address(limited_app: AppFactory) -> None:
    async with limited_app(rate_limit_default="1/minute") as app:
        async with http_client(app, peer="198.51.100.1") as first:
            assert (await first.get(CATEGORIES)).status_code == 200
            assert (await first.get(CATEGORIES)).status_code == 429
        async with http_client(app, peer="198.51.100.2") as second:
            assert (await second.get(CATEGORIES)).status_code == 200


async def test_the_count_is_shared_by_every_instance(limited_app: AppFactory) -> None:
    # Two apps on one Redis are two API instances behind one balancer.
    async with (
        limited_app(rate_limit_default="2/minute") as one,
        limited_app(rate_limit_default="2/minute") as other,
        http_client(one) as first,
        http_client(other) as second,
    ):
        assert (await first.get(CATEGORIES)).status_code == 200
        assert (await second.get(CATEGORIES)).status_code == 200
        assert_problem(await first.get(CATEGORIES), 429)
        assert_problem(await second.get(CATEGORIES), 429)


async def counted_in_redis(redis: Redis) -> int:
    """Hits Redis holds for every client and window (a window may roll over mid-test)."""
    keys = [key async for key in redis.scan_iter("keystone:ratelimit:*")]
    return sum(int(value) for value in await redis.mget(keys)) if keys else 0


async def test_far_from_its_limit_a_client_is_counted_in_batches(
    limited_app: AppFactory, redis: Redis
) -> None:
    async with limited_app(rate_limit_default="100000/day") as app, http_client(app) as http:
        remaining = []
        for _ in range(200):
            response = await http.get(CATEGORIES)
            remaining.append(int(response.headers["ratelimit-remaining"]))
        # Decided mostly in the process, yet every answer shows one hit fewer left...
        assert remaining == list(range(99_999, 99_999 - 200, -1))
        # ...and Redis was told of all but the last lease's hits.
        counted = await counted_in_redis(redis)
        assert 200 - LEASE_MAX_HITS <= counted < 200
        await asyncio.sleep(LEASE_MAX_S)  # the lease ends: the next request reports them all
        await http.get(CATEGORIES)
        assert await counted_in_redis(redis) == 201


async def test_near_its_limit_every_request_is_decided_by_redis(limited_app: AppFactory) -> None:
    async with limited_app(rate_limit_default="160/day") as app, http_client(app) as http:
        statuses = [(await http.get(CATEGORIES)).status_code for _ in range(170)]
    assert statuses == [200] * 160 + [429] * 10


async def test_leases_of_two_instances_overshoot_a_limit_by_a_bounded_share(
    limited_app: AppFactory,
) -> None:
    async with (
        limited_app(rate_limit_default="320/minute") as one,
        limited_app(rate_limit_default="320/minute") as other,
        http_client(one) as first,
        http_client(other) as second,
    ):
        allowed = 0
        for _ in range(200):
            for http in (first, second):
                allowed += (await http.get(CATEGORIES)).status_code == 200
    # Each instance may decide alone on at most 2/LEASE_SHARE of what remains.
    assert 320 <= allowed <= 320 + 2 * 2 * 320 // LEASE_SHARE


async def test_a_route_can_have_its_own_limit(limited_app: AppFactory) -> None:
    routes = {"GET /api/v1/catalog/products/{product_id}": "1/minute"}
    async with limited_app(rate_limit_routes=routes) as app, http_client(app) as http:
        first = await http.get("/api/v1/catalog/products/00000000-0000-0000-0000-000000000001")
        assert first.status_code == 404
        assert first.headers["ratelimit-limit"] == "1"
        other_id = await http.get("/api/v1/catalog/products/00000000-0000-0000-0000-000000000002")
        assert_problem(other_id, 429)
        elsewhere = await http.get(CATEGORIES)
        assert elsewhere.status_code == 200
        assert elsewhere.headers["ratelimit-limit"] == "100000"


def test_a_route_limit_for_no_route_stops_the_start(servers: Servers, database_url: str) -> None:
    routes = {"GET /api/v1/catalog/product/{product_id}": "1/minute"}  # "product", a typo
    settings = make_settings(database_url, servers.redis_url, rate_limit_routes=routes)
    with pytest.raises(RuntimeError, match="catalog/product/"):
        create_app(settings)


async def test_probes_are_not_limited(limited_app: AppFactory) -> None:
    async with limited_app(rate_limit_default="1/minute") as app, http_client(app) as http:
        for _ in range(3):
            response = await http.get("/healthz")
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers


async def login(http: httpx.AsyncClient, email: str) -> httpx.Response:
    return await http.post(LOGIN, data={"username": email, "password": "not-the-password"})


async def test_login_is_limited_per_address(limited_app: AppFactory) -> None:
    async with limited_app(rate_limit_auth_ip="2/minute") as app, http_client(app) as http:
        assert (await login(http, "a@example.com")).status_code == 401
        assert (await login(http, "b@example.com")).status_code == 401
        refused = await login(http, "c@example.com")
        assert_problem(refused, 429, "too-many-requests")
        assert_rate_headers(refused, 2, 0)
        assert "retry-after" in refused.headers
        # Only the auth route is held: the rest of the API still answers this address.
        assert (await http.get(CATEGORIES)).status_code == 200


async def test_login_is_limited_per_account_across_addresses(limited_app: AppFactory) -> None:
    async with limited_app(rate_limit_auth_account="2/minute") as app:
        answers = []
        for peer, email in [
            ("198.51.100.1", "victim@example.com"),
            ("198.51.100.2", "Victim@Example.com"),
            ("198.51.100.3", " victim@example.com"),
        ]:
            async with http_client(app, peer=peer) as http:
                answers.append(await login(http, email))
        assert [answer.status_code for answer in answers] == [401, 401, 429]
        assert_problem(answers[-1], 429, "too-many-requests")
        assert_rate_headers(answers[-1], 2, 0)

        async with http_client(app, peer="198.51.100.3") as http:
            # Another account from the same address is not held.
            assert (await login(http, "someone-else@example.com")).status_code == 401


async def test_register_is_limited_per_account(limited_app: AppFactory) -> None:
    body = {"email": "new@example.com", "password": "a-long-passphrase", "full_name": "New"}
    async with limited_app(rate_limit_auth_account="2/minute") as app:
        statuses = []
        for peer in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            async with http_client(app, peer=peer) as http:
                statuses.append((await http.post(REGISTER, json=body)).status_code)
        assert statuses == [201, 409, 429]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(limited_app: AppFactory) -> None:
    settings = {"rate_limit_default": "1/minute", "trusted_proxies": ["10.0.0.0/8"]}
    async with limited_app(**settings) as app, http_client(app, peer="203.0.113.9") as http:
        first = await http.get(CATEGORIES, headers={"X-Forwarded-For": "192.0.2.1"})
        assert first.status_code == 200
        spoofed = await http.get(CATEGORIES, headers={"X-Forwarded-For": "192.0.2.2"})
        assert_problem(spoofed, 429)


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    limited_app: AppFactory,
) -> None:
    settings = {"rate_limit_default": "1/minute", "trusted_proxies": ["10.0.0.0/8"]}
    async with limited_app(**settings) as app, http_client(app, peer="10.0.0.7") as proxy:
        for client_address in ("192.0.2.1", "192.0.2.2"):
            response = await proxy.get(CATEGORIES, headers={"X-Forwarded-For": client_address})
            assert response.status_code == 200
        # A client that prepends a fake address is still known by the one the proxy saw.
        forged = await proxy.get(CATEGORIES, headers={"X-Forwarded-For": "1.1.1.1, 192.0.2.1"})
        assert_problem(forged, 429)


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


async def test_redis_down_fails_open_for_the_api_and_is_counted_and_logged(
    limited_app: AppFactory,
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with limited_app(redis_url=dead_redis, rate_limit_default="1/minute") as app:
        with captured_log() as lines:
            async with http_client(app) as http:
                reads = [await http.get(CATEGORIES) for _ in range(3)]
                write = await http.post(CATEGORIES, json={"name": "Desks"})
    assert [read.status_code for read in reads] == [200, 200, 200]
    assert "ratelimit-limit" not in reads[0].headers
    assert_problem(write, 401)  # through to the endpoint, which wants a token
    limiter: RateLimiter = app.state.rate_limiter
    assert limiter.storage_failures == 4
    warnings = [e for e in log_events(lines) if e.get("logger") == "keystone.ratelimit"]
    assert len(warnings) == 1  # logged when it starts failing, not once per request
    assert warnings[0]["level"] == "warning"
    assert "unavailable" in warnings[0]["event"]


async def test_redis_down_closes_the_auth_routes_with_a_503(limited_app: AppFactory) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with limited_app(redis_url=dead_redis) as app, http_client(app) as http:
        response = await login(http, "a@example.com")
    body = assert_problem(response, 503, "service-unavailable")
    assert "try again" in body["detail"]
    assert response.headers["retry-after"] == "5"


async def test_auth_routes_can_be_told_to_fail_open(limited_app: AppFactory) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = {"redis_url": dead_redis, "rate_limit_auth_fail_closed": False}
    async with limited_app(**settings) as app, http_client(app) as http:
        assert_problem(await login(http, "a@example.com"), 401)


async def test_the_limiter_can_be_switched_off(limited_app: AppFactory) -> None:
    settings = {"rate_limit_enabled": False, "rate_limit_default": "1/minute"}
    async with limited_app(**settings) as app, http_client(app) as http:
        for _ in range(3):
            response = await http.get(CATEGORIES)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
        assert (await login(http, "a@example.com")).status_code == 401
