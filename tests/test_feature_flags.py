"""Feature flags (OpenFeature, flagd's provider reading a flag file in process): the
`writes-paused` maintenance switch answers writes with 503 problem+json while reads go on, is
switched on and off by editing the file without a restart, may exempt an address by targeting,
and every evaluation is counted in the metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.flags import WRITES_PAUSED
from app.main import create_app
from tests.conftest import Servers, TestUser, eventually, http_client, make_settings
from tests.helpers import assert_problem, product_body

PRODUCTS = "/api/v1/catalog/products"
METRICS_TOKEN = "flags-metrics-" + "k" * 24
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


def write_flags(path: Path, *, paused: bool, targeting: dict[str, Any] | None = None) -> None:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if paused else "off",
    }
    if targeting is not None:
        flag["targeting"] = targeting
    path.write_text(json.dumps({"flags": {WRITES_PAUSED: flag}}))


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_flags(path, paused=False)
    return path


@pytest.fixture
def flagged_app(servers: Servers, database_url: str, app: FastAPI, flag_file: Path) -> AppFactory:
    """An app reading `flag_file`, on the test database (which `app` empties per test)."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[FastAPI]:
        settings = make_settings(
            database_url, servers.redis_url, feature_flags_file=str(flag_file), **overrides
        )
        application = create_app(settings)
        async with LifespanManager(application):
            yield application

    return build


async def test_paused_writes_answer_503_while_reads_go_on(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser
) -> None:
    write_flags(flag_file, paused=True)
    async with flagged_app() as app, http_client(app) as http:
        refused = await http.post(PRODUCTS, json=product_body(), headers=staff.headers)
        assert_problem(refused, 503, "writes-paused")
        assert refused.headers["Retry-After"] == "60"
        assert "maintenance" in refused.json()["detail"]
        assert (await http.get(PRODUCTS)).status_code == 200
        login = await http.post("/api/v1/auth/login", data={"username": "a@b.c", "password": "x"})
        assert_problem(login, 503, "writes-paused")


async def test_the_switch_flips_by_editing_the_file_without_a_restart(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser
) -> None:
    async with flagged_app() as app, http_client(app) as http:
        created = await http.post(PRODUCTS, json=product_body(sku="ON-1"), headers=staff.headers)
        assert created.status_code == 201, created.text
        write_flags(flag_file, paused=True)

        async def paused() -> bool:
            answer = await http.post(PRODUCTS, json=product_body(sku="ON-2"), headers=staff.headers)
            return answer.status_code == 503

        await eventually(paused, timeout_s=10)
        write_flags(flag_file, paused=False)

        async def resumed() -> bool:
            answer = await http.post(PRODUCTS, json=product_body(sku="ON-3"), headers=staff.headers)
            return answer.status_code == 201

        await eventually(resumed, timeout_s=10)


async def test_targeting_exempts_an_operators_address(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser
) -> None:
    # Paused for everyone but the operator's address (the test client's is 127.0.0.1).
    exempt = {"if": [{"==": [{"var": "client_address"}, "127.0.0.1"]}, "off", "on"]}
    write_flags(flag_file, paused=True, targeting=exempt)
    async with flagged_app() as app, http_client(app) as http:
        created = await http.post(PRODUCTS, json=product_body(), headers=staff.headers)
    assert created.status_code == 201, created.text


async def test_without_a_flag_source_every_flag_is_off(app: FastAPI, staff: TestUser) -> None:
    async with http_client(app) as http:
        created = await http.post(PRODUCTS, json=product_body(), headers=staff.headers)
    assert created.status_code == 201, created.text


async def test_evaluations_are_counted_per_flag_and_value(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser
) -> None:
    write_flags(flag_file, paused=True)
    async with (
        flagged_app(metrics_enabled=True, metrics_token=METRICS_TOKEN) as app,
        http_client(app) as http,
    ):
        for _ in range(3):
            await http.post(PRODUCTS, json=product_body(), headers=staff.headers)
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    line = 'keystone_feature_flag_evaluations_total{flag="writes-paused",'
    [counted] = [row for row in scraped.text.splitlines() if row.startswith(line)]
    assert 'value="true"' in counted
    assert counted.endswith(" 3.0")
