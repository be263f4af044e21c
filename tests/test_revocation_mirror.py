"""The token deny-list mirrored in each API process: a revocation made on one instance is
refused by another within a short bound, revocations made before an instance starts are loaded,
entries leave memory when they leave Redis, and a following mirror checks tokens without a
Redis round trip. Outages and cut-off instances are in tests/faults/test_revocation_mirror.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from app.core.config import Settings
from app.core.security.rbac import Principal
from app.core.security.revocation import (
    REVOCATIONS_CHANNEL,
    RevocationMirror,
    TokenRevocations,
)
from app.core.security.tokens import AccessToken
from app.main import create_app
from tests.conftest import TestUser, UserFactory, eventually, http_client
from tests.helpers import (
    LOGOUT,
    ME,
    answers,
    assert_problem,
    checked_in_memory,
    mget_calls,
    refused_from_memory,
)

# Pub/sub delivers in about a millisecond; this only keeps a loaded test machine from failing.
DELIVERY_BOUND_S = 2.0
PASSWORD_CHANGE = "/api/v1/users/me/password"


async def log_in(client: httpx.AsyncClient, user: TestUser) -> dict[str, str]:
    form = {"username": user.email, "password": user.password}
    response = await client.post("/api/v1/auth/login", data=form)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def replica(settings: Settings) -> FastAPI:
    """Another instance of the API: same Postgres, same Redis."""
    return create_app(settings)


async def test_a_logout_on_one_instance_is_refused_by_another_within_the_bound(
    client: httpx.AsyncClient, settings: Settings, customer: TestUser, redis: Redis
) -> None:
    other = replica(settings)
    async with LifespanManager(other), http_client(other) as elsewhere:
        await eventually(lambda: checked_in_memory(elsewhere, customer.headers, redis))

        assert (await client.post(LOGOUT, headers=customer.headers)).status_code == 204

        await eventually(
            lambda: answers(elsewhere, customer.headers, 401), timeout_s=DELIVERY_BOUND_S
        )
        await eventually(lambda: refused_from_memory(elsewhere, [customer.headers], redis))


async def test_the_instance_that_revokes_refuses_the_token_on_its_very_next_request(
    client: httpx.AsyncClient, customer: TestUser, redis: Redis
) -> None:
    await eventually(lambda: checked_in_memory(client, customer.headers, redis))

    assert (await client.post(LOGOUT, headers=customer.headers)).status_code == 204

    assert_problem(await client.get(ME, headers=customer.headers), 401)


async def test_revocations_made_before_an_instance_starts_are_honoured(
    client: httpx.AsyncClient, settings: Settings, make_user: UserFactory, redis: Redis
) -> None:
    user = await make_user()
    logged_out = user.headers
    other_session = await log_in(client, user)
    kept = await log_in(client, user)
    assert (await client.post(LOGOUT, headers=logged_out)).status_code == 204  # token + session
    change = {"current_password": user.password, "new_password": "another-horse-battery"}
    # Ends every other session: only their session ids are listed.
    assert (await client.post(PASSWORD_CHANGE, json=change, headers=kept)).status_code == 204

    late = replica(settings)
    async with LifespanManager(late), http_client(late) as there:
        await eventually(lambda: checked_in_memory(there, kept, redis))

        refused = [logged_out, other_session]
        await eventually(lambda: refused_from_memory(there, refused, redis))


async def test_a_following_mirror_checks_tokens_without_asking_redis(
    client: httpx.AsyncClient, settings: Settings, customer: TestUser, redis: Redis
) -> None:
    requests = 20
    await eventually(lambda: checked_in_memory(client, customer.headers, redis))
    without_mirror = replica(settings.model_copy(update={"revocation_mirror": False}))
    async with LifespanManager(without_mirror), http_client(without_mirror) as unmirrored:
        for http, mgets_per_request in ((client, 0), (unmirrored, 1)):
            before = await mget_calls(redis)
            for _ in range(requests):
                assert (await http.get(ME, headers=customer.headers)).status_code == 200
            assert await mget_calls(redis) - before == requests * mgets_per_request


async def test_a_revocation_leaves_the_mirror_when_it_leaves_redis(redis: Redis) -> None:
    """Memory holds only what is live: an id learnt from the channel is forgotten (and the
    token no longer refused by it) when its Redis key expires, without a Redis lookup."""
    mirror = RevocationMirror(redis, heartbeat_s=0.2, timeout_s=1.0)
    here = TokenRevocations(redis, mirror, access_ttl_s=60)
    elsewhere = TokenRevocations(redis, RevocationMirror(redis, 0.2, 1.0), access_ttl_s=60)
    following = asyncio.create_task(mirror.run())
    token = AccessToken(
        principal=Principal(user_id=uuid4(), roles=frozenset()),
        token_id=uuid4().hex,
        session_id=uuid4(),
        expires_at=datetime.now(UTC) + timedelta(seconds=1),
    )

    async def current() -> bool:
        return mirror.is_current()

    async def accepted() -> bool:
        return not await here.is_revoked(token)

    async def expired_in_redis() -> bool:
        return not await redis.exists(f"auth:revoked-token:{token.token_id}")

    try:
        await eventually(current)
        mgets = await mget_calls(redis)
        await elsewhere.revoke_token(token)  # listed in Redis for a second
        await eventually(lambda: here.is_revoked(token), timeout_s=DELIVERY_BOUND_S)
        await eventually(expired_in_redis)
        await eventually(accepted, timeout_s=0.5)
        assert mirror.is_current()
        assert await mget_calls(redis) == mgets
    finally:
        mirror.stop()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


async def test_a_message_the_mirror_cannot_read_makes_it_reload_rather_than_guess(
    client: httpx.AsyncClient,
    customer: TestUser,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await eventually(lambda: checked_in_memory(client, customer.headers, redis))

    await redis.publish(REVOCATIONS_CHANNEL, b"not a revocation")

    async def gave_up() -> bool:
        return "revocation mirror lost; checking Redis per request" in caplog.text

    await eventually(gave_up)
    assert (await client.get(ME, headers=customer.headers)).status_code == 200
    await eventually(lambda: checked_in_memory(client, customer.headers, redis))


async def test_an_instance_stops_promptly_whatever_its_mirror_is_doing(settings: Settings) -> None:
    """Stopped while it subscribes, loads or follows (a cancellation redis-py loses must not
    keep the process alive): shutdown stays well inside a platform's grace period."""
    for pause_s in (0, 0.001, 0.005, 0.02, 0.05, 0.2, 1.0):
        instance = replica(settings)
        async with LifespanManager(instance, shutdown_timeout=30):
            await asyncio.sleep(pause_s)
            stopping = asyncio.get_running_loop().time()
        assert asyncio.get_running_loop().time() - stopping < 2.0, pause_s
