"""The token deny-list mirror when Redis goes away: it stops answering within its bound, every
authenticated request then needs Redis (503 while Redis cannot answer), and once Redis is back
the mirror re-subscribes and reloads, so what was revoked while an instance was cut off is
refused there too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app.core.config import Settings
from app.main import create_app
from tests.conftest import TestUser, UserFactory, eventually, http_client
from tests.faults.conftest import RedisProcess
from tests.faults.tcp_proxy import TcpProxy
from tests.helpers import (
    LOGOUT,
    ME,
    answers,
    assert_problem,
    checked_in_memory,
    refused_from_memory,
)

# The mirror stops answering once Redis has not confirmed it for 2 x REVOCATION_HEARTBEAT_S
# (1 s by default) and re-subscribes within a heartbeat of Redis being back; these bounds only
# leave room for a loaded test machine.
NOTICED_S = 10.0
RESUMED_S = 15.0


@pytest.fixture
async def proxy(fault_redis: RedisProcess) -> AsyncIterator[TcpProxy]:
    """A way to cut one instance off Redis while Redis stays up for the others."""
    link = TcpProxy("127.0.0.1", fault_redis.port)
    await link.start()
    yield link
    await link.cut()


@pytest.mark.parametrize("outage", ["killed", "frozen"])
async def test_while_redis_is_away_tokens_get_503_and_the_mirror_resumes_after(
    client: httpx.AsyncClient,
    customer: TestUser,
    fault_redis: RedisProcess,
    redis: Redis,
    outage: str,
) -> None:
    await eventually(lambda: checked_in_memory(client, customer.headers, redis))

    fault_redis.kill() if outage == "killed" else fault_redis.freeze()
    await eventually(lambda: answers(client, customer.headers, 503), timeout_s=NOTICED_S)
    during = await client.get(ME, headers=customer.headers)
    assert "retry" in assert_problem(during, 503, "service-unavailable")["detail"]

    fault_redis.thaw() if outage == "frozen" else fault_redis.start()
    await eventually(lambda: checked_in_memory(client, customer.headers, redis), RESUMED_S)
    assert (await client.post(LOGOUT, headers=customer.headers)).status_code == 204
    assert_problem(await client.get(ME, headers=customer.headers), 401)

    async def sign_in_works() -> bool:  # the fail-closed login limit recovers too
        form = {"username": customer.email, "password": customer.password}
        return (await client.post("/api/v1/auth/login", data=form)).status_code == 200

    await eventually(sign_in_works)


async def test_a_logout_made_while_an_instance_was_cut_off_is_refused_there_once_it_is_back(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    redis: Redis,
    proxy: TcpProxy,
) -> None:
    user = await make_user()
    form = {"username": user.email, "password": user.password}
    kept = (await client.post("/api/v1/auth/login", data=form)).json()["access_token"]
    behind_proxy = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    isolated = create_app(behind_proxy)
    async with LifespanManager(isolated), http_client(isolated) as there:
        await eventually(lambda: checked_in_memory(there, user.headers, redis))

        await proxy.cut()
        await eventually(lambda: answers(there, user.headers, 503), timeout_s=NOTICED_S)
        # Another instance, still connected, ends the session meanwhile.
        assert (await client.post(LOGOUT, headers=user.headers)).status_code == 204
        assert_problem(await there.get(ME, headers=user.headers), 503, "service-unavailable")

        await proxy.start()
        still_valid = {"Authorization": f"Bearer {kept}"}
        await eventually(lambda: checked_in_memory(there, still_valid, redis), RESUMED_S)
        # Refused by the reloaded mirror, without asking Redis.
        await eventually(lambda: refused_from_memory(there, [user.headers], redis))
