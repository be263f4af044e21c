"""Liveness touches nothing; readiness names the dependency that is missing."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.core import migrations
from app.core.config import Settings
from app.main import create_app
from tests.conftest import Servers, make_settings
from tests.databases import module_logins


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_everything_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "migrations": "ok"},
    }


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get(path)


async def test_not_ready_without_redis(database_url: str) -> None:
    settings = make_settings(database_url, "redis://127.0.0.1:1/0", redis_timeout_s=0.5)
    response = await _get(settings, "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["postgres"] == "ok"
    assert checks["redis"] == "failed"  # the driver's message (host, port) stays in the log
    # Liveness does not depend on Redis: restarting the process would not help.
    assert (await _get(settings, "/healthz")).status_code == 200


async def test_not_ready_without_postgres(servers: Servers) -> None:
    settings = make_settings(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", servers.redis_url, db_pool_timeout_s=0.5
    )
    response = await _get(settings, "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["postgres"] == "failed"
    assert checks["redis"] == "ok"


@pytest.fixture
async def half_migrated_url(servers: Servers) -> str:
    url = await servers.recreate_database("keystone_half_migrated")
    logins = module_logins(url)
    await migrations.migrate(url, {module: logins[module] for module in ("users", "catalog")})
    return url


async def test_not_ready_when_a_module_is_behind_its_migrations(
    half_migrated_url: str, servers: Servers
) -> None:
    response = await _get(make_settings(half_migrated_url, servers.redis_url), "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == ("failed: not at migration head: orders")
