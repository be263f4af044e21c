"""Feature flags (OpenFeature, flagd's provider reading a flag file in process): the
`writes-paused` maintenance switch answers writes with 503 problem+json while reads go on, is
switched on and off by editing the file without a restart, may exempt an address by targeting;
`checkout-stock-precheck` refuses at checkout what the catalog cannot supply, and is rolled out
to a share of customers by their user id, each keeping their variant; every evaluation is
counted in the metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.flags import WRITES_PAUSED, FeatureFlags
from app.main import create_app
from app.modules.orders.router import STOCK_PRECHECK
from tests.conftest import (
    Servers,
    TestUser,
    UserFactory,
    eventually,
    http_client,
    make_settings,
)
from tests.helpers import assert_problem, create_product, place, product_body

PRODUCTS = "/api/v1/catalog/products"
METRICS_TOKEN = "flags-metrics-" + "k" * 24
ROLLOUT_CUSTOMERS = 100
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


def boolean_flag(on: bool, targeting: dict[str, Any] | None = None) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if on else "off",
    }
    if targeting is not None:
        flag["targeting"] = targeting
    return flag


def write_flags(
    path: Path,
    *,
    paused: bool,
    targeting: dict[str, Any] | None = None,
    precheck: dict[str, Any] | None = None,
) -> None:
    flags = {WRITES_PAUSED: boolean_flag(paused, targeting)}
    if precheck is not None:
        flags[STOCK_PRECHECK] = precheck
    path.write_text(json.dumps({"flags": flags}))


def rollout(percent: int) -> dict[str, Any]:
    """On for `percent`% of customers: flagd's `fractional` buckets the targeting key (the
    user id) hashed with the flag's name."""
    return boolean_flag(False, {"fractional": [["on", percent], ["off", 100 - percent]]})


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


async def sold_out_product(client: httpx.AsyncClient, staff: TestUser) -> str:
    product = await create_product(client, staff, stock=0)
    return str(product["id"])


async def test_the_stock_precheck_on_refuses_a_checkout_the_catalog_cannot_supply(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser, customer: TestUser
) -> None:
    write_flags(flag_file, paused=False, precheck=boolean_flag(True))
    async with flagged_app() as app, http_client(app) as http:
        product = await create_product(http, staff, stock=2)
        refused = await place(http, customer, (str(product["id"]), 3))
        body = assert_problem(refused, 409, "out-of-stock")
        assert str(product["id"]) in body["detail"]
        assert (await http.get("/api/v1/orders", headers=customer.headers)).json()["items"] == []
        placed = await place(http, customer, (str(product["id"]), 2))
        assert placed.status_code == 201, placed.text


async def test_the_stock_precheck_off_places_the_order_and_the_reservation_rejects_it(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser, customer: TestUser
) -> None:
    write_flags(flag_file, paused=False, precheck=boolean_flag(False))
    async with flagged_app() as app, http_client(app) as http:
        placed = await place(http, customer, (await sold_out_product(http, staff), 1))
        assert placed.status_code == 201, placed.text
        order = f"/api/v1/orders/{placed.json()['id']}"

        async def rejected() -> bool:
            answer = await http.get(order, headers=customer.headers)
            return bool(answer.json()["status"] == "rejected")

        await eventually(rejected)


async def test_a_30_percent_rollout_reaches_about_30_percent_of_customers_each_for_good(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser, make_user: UserFactory
) -> None:
    write_flags(flag_file, paused=False, precheck=rollout(30))
    customers = [await make_user() for _ in range(ROLLOUT_CUSTOMERS)]
    async with flagged_app() as app, http_client(app) as http:
        product = await sold_out_product(http, staff)
        # Each customer checks out twice: their variant must not change between requests.
        answers = [
            [(await place(http, buyer, (product, 1))).status_code for _ in range(2)]
            for buyer in customers
        ]
        flags: FeatureFlags = app.state.flags
        fixed_ids = [str(uuid5(NAMESPACE_URL, f"customer-{n}")) for n in range(10_000)]
        many = [flags.enabled(STOCK_PRECHECK, user_id) for user_id in fixed_ids]
    assert all(first == again for first, again in answers), answers
    assert {first for first, _ in answers} == {201, 409}
    share = sum(first == 409 for first, _ in answers) / len(answers)
    # 100 random customer ids: 30% with a standard deviation of 4.6 points; this band is
    # 3.2 deviations wide on each side.
    assert 0.15 <= share <= 0.45, share
    # The same rule over 10,000 fixed ids (deterministic): the share is the configured one.
    assert abs(sum(many) / len(many) - 0.30) < 0.015


async def test_rollout_evaluations_are_counted_per_variant(
    flagged_app: AppFactory, flag_file: Path, staff: TestUser, make_user: UserFactory
) -> None:
    write_flags(flag_file, paused=False, precheck=rollout(30))
    customers = [await make_user() for _ in range(20)]
    async with (
        flagged_app(metrics_enabled=True, metrics_token=METRICS_TOKEN) as app,
        http_client(app) as http,
    ):
        product = await sold_out_product(http, staff)
        refused = [
            (await place(http, buyer, (product, 1))).status_code == 409 for buyer in customers
        ]
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    counted = {
        value: float(row.rsplit(" ", 1)[1])
        for row in scraped.text.splitlines()
        if row.startswith(f'keystone_feature_flag_evaluations_total{{flag="{STOCK_PRECHECK}",')
        for value in ("true", "false")
        if f'value="{value}"' in row
    }
    assert counted.get("true", 0.0) == sum(refused)
    assert counted.get("false", 0.0) == len(customers) - sum(refused)
