"""The shipped observability against a running Keystone: a real Prometheus scrapes
`python -m app.cli serve` and `python -m app.cli worker` with METRICS_TOKEN on the shipped
config and rules, every metric the rules and dashboards name exists in what it scraped, every
recording rule yields a series, every dashboard query evaluates (`promtool query instant`), and
a readiness check the test breaks reaches the pager's webhook through a real Alertmanager on the
shipped routing tree.

One Keystone (API and worker), Prometheus and Alertmanager for the whole module (a few
seconds to start)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import Settings
from tests.conftest import Servers
from tests.faults.conftest import serving_api, settings_on_own_database
from tests.observability.stack import (
    OBSERVABILITY,
    PROMETHEUS_DIR,
    Webhook,
    alertmanager,
    prometheus,
    scratch,
    serving_worker,
    webhook,
)
from tests.tools import require_tool

METRICS_TOKEN = "observability-" + "t" * 24
# Raw metric names: the app's own, FastAPI's, the process collector's, and Prometheus's own per
# target (`up`, `scrape_*`); recording rules are `keystone:<what>:<how>`.
RAW_METRIC = re.compile(r"\b(?:(?:keystone|http_server|process|scrape)_[a-z0-9_]+|up)\b(?!:)")
RECORDED_METRIC = re.compile(r"\bkeystone:[a-z0-9_]+:[a-z0-9_]+\b")
# Grafana's own variables, as a dashboard panel would have them filled in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$job": "keystone"}
WAIT_S = 60


@dataclass(frozen=True)
class Stack:
    keystone: str
    prometheus: str
    webhook: Webhook
    settings: Settings


def rule_files() -> list[Path]:
    return sorted(PROMETHEUS_DIR.glob("*.rules.yml"))


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def dashboard_queries() -> list[str]:
    """Every PromQL expression of every dashboard, with Grafana's variables filled in."""
    queries = []
    for path in sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                query = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    query = query.replace(variable, value)
                queries.append(query)
    return queries


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_observability", redis_db=14)


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:
    with (
        scratch() as folder,
        webhook() as hook,
        serving_api(
            settings,
            folder / "keystone.log",
            APP_ENV="test",
            LOG_LEVEL="WARNING",
            METRICS_ENABLED="true",
            METRICS_TOKEN=METRICS_TOKEN,
        ) as (keystone, _),
        serving_worker(settings, folder / "worker.log", METRICS_TOKEN) as worker,
        alertmanager(folder, hook.url) as alerts,
        prometheus(
            folder, keystone.removeprefix("http://"), worker, METRICS_TOKEN, alerts
        ) as metrics,
    ):
        stack = Stack(keystone, metrics, hook, settings)
        _register_a_customer(keystone)
        # Series that exist once something happened: an event delivered, a job run.
        for recorded in (
            "keystone_events_delivery_lag_seconds_count",
            "keystone_jobs_completed_total",
        ):
            _wait_for(stack, recorded)
        # Rates need a counter that moved between two scrapes: traffic until one has.
        deadline = time.monotonic() + WAIT_S
        while not query(stack, "keystone:http_requests:rate5m > 0"):
            assert time.monotonic() < deadline, f"no request rate recorded: {_targets(stack)}"
            _make_traffic(keystone)
            time.sleep(0.5)
        yield stack


def _register_a_customer(base: str) -> None:
    """Writes UserRegistered (delivered by a relay) and enqueues the verification email job."""
    account = {
        "email": f"observed-{uuid4().hex[:12]}@example.com",
        "password": "a-sturdy-passphrase",
        "full_name": "Observed Customer",
    }
    answer = httpx.post(f"{base}/api/v1/auth/register", json=account, timeout=10)
    assert answer.status_code == 201, answer.text


def _make_traffic(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(3):
            assert http.get("/api/v1/catalog/products").status_code == 200
            assert http.get(f"/api/v1/catalog/products/{uuid4()}").status_code == 404


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _wait_for(stack: Stack, promql: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while not (result := query(stack, promql)):
        assert time.monotonic() < deadline, f"no series for {promql}: {_targets(stack)}"
        time.sleep(0.5)
    return result


def _targets(stack: Stack) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()
    targets: list[dict[str, Any]] = answer["data"]["activeTargets"]
    return targets


def scraped_names(stack: Stack) -> set[str]:
    answer = httpx.get(
        f"{stack.prometheus}/api/v1/label/__name__/values",
        params={"match[]": '{job="keystone"}'},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return set(answer.json()["data"])


def test_prometheus_scrapes_the_api_and_the_worker_with_the_metrics_token(stack: Stack) -> None:
    ups = query(stack, 'up{job="keystone"}')
    assert [up["value"][1] for up in ups] == ["1", "1"]
    targets = _targets(stack)
    assert len(targets) == 2
    for target in targets:
        assert target["health"] == "up", target["lastError"]


def test_every_metric_the_rules_and_dashboards_name_is_scraped(stack: Stack) -> None:
    named = {
        name
        for expression in [*(rule["expr"] for rule in rules()), *dashboard_queries()]
        for name in RAW_METRIC.findall(expression)
    }
    assert "keystone_readiness" in named  # the pattern finds what the rules use
    scraped = scraped_names(stack) | {"up"}
    assert named - scraped == set(), f"named but never scraped: {sorted(named - scraped)}"


def test_every_recorded_metric_used_is_recorded_and_yields_series(stack: Stack) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {
        name
        for expression in [*(rule["expr"] for rule in rules()), *dashboard_queries()]
        for name in RECORDED_METRIC.findall(expression)
    }
    assert used - recorded == set(), f"no recording rule for {sorted(used - recorded)}"
    for name in sorted(recorded):
        assert _wait_for(stack, name), name


def test_every_dashboard_query_evaluates_against_the_scraped_data(stack: Stack) -> None:
    promtool = require_tool("promtool", "prometheus")
    queries = dashboard_queries()
    assert len(queries) >= 20
    for promql in queries:
        result = subprocess.run(
            [promtool, "query", "instant", stack.prometheus, promql],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, f"{promql}\n{result.stderr}"


async def test_a_failing_readiness_check_reaches_the_pager(stack: Stack) -> None:
    """A release whose migration did not run: /readyz's `migrations` check fails, Prometheus
    fires KeystoneNotReady, Alertmanager routes it (severity=page) to the pager receiver."""
    engine = create_async_engine(stack.settings.require_database_url())
    async with _catalog_behind_its_head(engine):
        async with httpx.AsyncClient(base_url=stack.keystone) as http:
            readiness = await http.get("/readyz")
        assert readiness.status_code == 503
        alert = await _paged(stack.webhook, "KeystoneNotReady")
    await engine.dispose()
    assert alert["labels"]["check"] == "migrations"
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["runbook"] == "docs/slo.md#keystonenotready"
    assert alert["status"] == "firing"


@asynccontextmanager
async def _catalog_behind_its_head(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        revision = await connection.scalar(text("SELECT version_num FROM catalog.alembic_version"))
        await connection.execute(text("UPDATE catalog.alembic_version SET version_num = 'old'"))
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE catalog.alembic_version SET version_num = :revision"),
                {"revision": revision},
            )


async def _paged(hook: Webhook, alertname: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for notification in hook.received:
            for alert in notification["alerts"]:
                if alert["labels"]["alertname"] == alertname:
                    assert notification["receiver"] == "keystone-pager"
                    found: dict[str, Any] = alert
                    return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"{alertname} never reached the webhook: {hook.received}")
