"""Postgres goes away and comes back (a restart, seen through a proxy the test cuts): readiness
turns 503 and back to 200, requests that need the database fail fast with a 503 problem, and
afterwards the pool serves fresh connections again, nothing stuck."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.security.rbac import Role
from app.main import create_app
from tests.conftest import Servers, make_settings
from tests.faults.tcp_proxy import TcpProxy
from tests.helpers import ME, ORDERS, PRODUCTS, assert_problem

NO_HANG_S = 30


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[TcpProxy]:
    url = make_url(settings.require_database_url())
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    port = int(str(url.query.get("port") or url.port or 5432))
    proxy = TcpProxy(host, port)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def test_postgres_restart_is_a_fast_503_then_recovers(
    proxied: TcpProxy, settings: Settings, servers: Servers
) -> None:
    direct = make_url(settings.require_database_url())
    url = direct.set(host="127.0.0.1", port=proxied.port, query={})
    app = create_app(
        make_settings(
            url.render_as_string(hide_password=False),
            servers.redis_database(8),
            db_pool_timeout_s=1,
        )
    )
    token = (
        app.state.runtime.module("users")
        .container.issuer()
        .issue_access_token(uuid4(), frozenset({Role.CUSTOMER}), uuid4())
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get(ORDERS, headers=headers)).status_code == 200

            # One-row reads go through their own pool (`Database.read_row`): open it too.
            assert (await http.get(ME, headers=headers)).status_code == 404  # no such account
            assert (await http.get(f"{PRODUCTS}/{uuid4()}")).status_code == 404

            await proxied.cut()  # Postgres is gone
            ready = await asyncio.wait_for(http.get("/readyz"), NO_HANG_S)
            listing = await asyncio.wait_for(http.get(ORDERS, headers=headers), NO_HANG_S)
            profile = await asyncio.wait_for(http.get(ME, headers=headers), NO_HANG_S)
            product = await asyncio.wait_for(http.get(f"{PRODUCTS}/{uuid4()}"), NO_HANG_S)

            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"].startswith("failed")
            body = assert_problem(listing, 503, "database-unavailable")
            assert "try again" in body["detail"]
            assert listing.headers["retry-after"] == "2"
            for read in (profile, product):
                assert_problem(read, 503, "database-unavailable")

            await proxied.start()  # back
            assert (await http.get("/readyz")).status_code == 200
            for _ in range(3):  # every pooled connection is fresh or re-checked
                assert (await http.get(ORDERS, headers=headers)).status_code == 200
                assert (await http.get(ME, headers=headers)).status_code == 404
                assert (await http.get(f"{PRODUCTS}/{uuid4()}")).status_code == 404
