"""Metrics at GET /metrics (Prometheus text, behind a bearer token) and traces sent over OTLP/HTTP
to a real receiver: a span per request named by its route, continuing the caller's trace, whose
id the access line carries."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import text

from app.core.telemetry import Telemetry
from app.main import create_app
from tests.conftest import Servers, access_lines, http_client, make_settings
from tests.databases import operator_database
from tests.helpers import assert_problem
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

METRICS_TOKEN = "m3tr1cs-" + "k" * 24  # 32 characters
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PRODUCTS = "/api/v1/catalog/products"
SERVER = 2  # SpanKind SERVER in OTLP
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_with(servers: Servers, database_url: str, app: FastAPI) -> AppFactory:
    """An app of its own settings on the test database (which the shared `app` fixture empties
    before each test)."""

    @asynccontextmanager
    async def build(database: str = database_url, **overrides: Any) -> AsyncIterator[FastAPI]:
        application = create_app(make_settings(database, servers.redis_url, **overrides))
        async with LifespanManager(application):
            yield application

    return build


@pytest.fixture
async def traced(app_with: AppFactory, receiver: OtlpReceiver) -> AsyncIterator[FastAPI]:
    async with app_with(
        otel_exporter_otlp_endpoint=receiver.url + "/", tracing_sample_ratio=1
    ) as application:
        yield application


@pytest.fixture
async def metered(app_with: AppFactory) -> AsyncIterator[FastAPI]:
    async with app_with(metrics_enabled=True, metrics_token=METRICS_TOKEN) as application:
        yield application


async def exported_spans(app: FastAPI, receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    telemetry: Telemetry = app.state.telemetry
    assert telemetry.tracer_provider is not None
    await asyncio.to_thread(telemetry.tracer_provider.force_flush)
    return [span for span in receiver.spans if span.trace_id == trace_id]


def server_span(spans: list[ReceivedSpan]) -> ReceivedSpan:
    [span] = [span for span in spans if span.kind == SERVER]
    return span


def traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


async def test_request_is_a_server_span_named_by_its_route_with_its_status(
    traced: FastAPI, receiver: OtlpReceiver
) -> None:
    header, trace_id, _ = traceparent()
    async with http_client(traced) as http:
        missing = await http.get(f"{PRODUCTS}/{uuid.uuid4()}", headers={"traceparent": header})
    assert missing.status_code == 404

    spans = await exported_spans(traced, receiver, trace_id)
    span = server_span(spans)
    assert span.name == "GET /api/v1/catalog/products/{product_id}"
    assert span.attributes["http.route"] == "/api/v1/catalog/products/{product_id}"
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["http.request.method"] == "GET"
    assert span.resource["service.name"] == "keystone"
    # The endpoint's own work is a child of the server span.
    assert any(s.name == "fastapi.endpoint" and s.parent_span_id == span.span_id for s in spans)


async def test_incoming_traceparent_is_continued(traced: FastAPI, receiver: OtlpReceiver) -> None:
    header, trace_id, parent_id = traceparent()
    async with http_client(traced) as http:
        response = await http.get(PRODUCTS, headers={"traceparent": header})
    assert response.status_code == 200

    span = server_span(await exported_spans(traced, receiver, trace_id))
    assert span.trace_id == trace_id
    assert span.parent_span_id == parent_id
    assert span.attributes["http.response.status_code"] == 200


async def test_access_line_carries_the_trace_id(
    traced: FastAPI, receiver: OtlpReceiver, log_lines: io.StringIO
) -> None:
    header, trace_id, _ = traceparent()
    async with http_client(traced) as http:
        await http.get(PRODUCTS, headers={"traceparent": header, "X-Request-ID": "traced-1"})
        await http.get(PRODUCTS, headers={"X-Request-ID": "traced-2"})

    lines = {line["request_id"]: line for line in access_lines(log_lines)}
    assert lines["traced-1"]["trace_id"] == trace_id
    # A request arriving without a trace starts one, and its line names it.
    new_trace = lines["traced-2"]["trace_id"]
    assert isinstance(new_trace, str)
    assert server_span(await exported_spans(traced, receiver, new_trace)).name == f"GET {PRODUCTS}"


async def test_no_trace_id_in_logs_when_tracing_is_off(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    header, _, _ = traceparent()
    await client.get(PRODUCTS, headers={"traceparent": header, "X-Request-ID": "untraced"})
    [line] = [line for line in access_lines(log_lines) if line["request_id"] == "untraced"]
    assert "trace_id" not in line


async def test_unsampled_new_traces_are_not_exported_but_a_sampled_caller_is_followed(
    app_with: AppFactory, receiver: OtlpReceiver
) -> None:
    async with app_with(otel_exporter_otlp_endpoint=receiver.url, tracing_sample_ratio=0) as app:
        header, followed, _ = traceparent()
        unsampled, not_followed, _ = traceparent()
        async with http_client(app) as http:
            await http.get(PRODUCTS, headers={"traceparent": header})
            await http.get(PRODUCTS, headers={"traceparent": unsampled[:-2] + "00"})
        assert server_span(await exported_spans(app, receiver, followed)).name == f"GET {PRODUCTS}"
        assert await exported_spans(app, receiver, not_followed) == []


async def test_probes_and_scrapes_are_not_traced(
    app_with: AppFactory, receiver: OtlpReceiver
) -> None:
    async with app_with(
        otel_exporter_otlp_endpoint=receiver.url, metrics_enabled=True, tracing_sample_ratio=1
    ) as app:
        header, trace_id, _ = traceparent()
        async with http_client(app) as http:
            for path in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(path, headers={"traceparent": header})).status_code == 200
        assert await exported_spans(app, receiver, trace_id) == []


def samples(body: str, name: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_show_requests_per_route_and_the_cache_counters(metered: FastAPI) -> None:
    async with http_client(metered) as http:
        for _ in range(3):
            assert (await http.get(PRODUCTS)).status_code == 200
        await http.get(f"{PRODUCTS}/{uuid.uuid4()}")
        assert (await http.get("/healthz")).status_code == 200
        response = await http.get("/metrics", headers=SCRAPE)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    body = response.text
    requests = {
        (s.labels["http_route"], s.labels["http_response_status_code"]): s.value
        for s in samples(body, "http_server_request_duration_seconds_count")
    }
    assert requests[(PRODUCTS, "200")] == 3
    assert requests[(f"{PRODUCTS}/{{product_id}}", "404")] == 1
    assert samples(body, "http_server_request_duration_seconds_bucket")
    # Probes and scrapes are not the service's requests; none is in flight at the scrape.
    assert {route for route, _ in requests} == {PRODUCTS, f"{PRODUCTS}/{{product_id}}"}
    assert [(s.labels, s.value) for s in samples(body, "http_server_active_requests")] == [
        ({"http_request_method": "GET"}, 0)
    ]
    # The first listing computed and stored, the next two were served from the copy.
    [hits] = samples(body, "keystone_cache_hits_total")
    [misses] = samples(body, "keystone_cache_misses_total")
    assert (hits.value, misses.value) == (2, 2)
    [errors] = samples(body, "keystone_cache_backend_errors_total")
    [storage] = samples(body, "keystone_rate_limit_storage_failures_total")
    assert errors.value == storage.value == 0


async def test_metrics_count_the_event_backlog_per_module(metered: FastAPI) -> None:
    runtime = metered.state.runtime
    async with operator_database(runtime).session() as session:
        await session.execute(
            text(
                "INSERT INTO catalog.outbox (event_id, event_type, event_version, payload, "
                "occurred_at, next_attempt_at) VALUES (:id, 'test.waiting', 1, '{}', "
                "now() - interval '90 seconds', now() + interval '1 hour')"
            ),
            {"id": uuid.uuid4()},
        )
        for handler in ("orders.first", "orders.second"):
            await session.execute(
                text(
                    "INSERT INTO orders.inbox (event_id, handler, event_type, status, attempts) "
                    "VALUES (:id, :handler, 'test.failed', 'dead', 5)"
                ),
                {"id": uuid.uuid4(), "handler": handler},
            )
    async with http_client(metered) as http:
        body = (await http.get("/metrics", headers=SCRAPE)).text

    undelivered = {
        s.labels["module"]: s.value for s in samples(body, "keystone_events_undelivered")
    }
    dead = {s.labels["module"]: s.value for s in samples(body, "keystone_events_dead_letters")}
    assert undelivered == {"users": 0, "catalog": 1, "orders": 0}
    age = {
        s.labels["module"]: s.value
        for s in samples(body, "keystone_events_oldest_undelivered_age_seconds")
    }
    assert age["users"] == age["orders"] == 0
    assert 90 <= age["catalog"] < 3600
    assert dead == {"users": 0, "catalog": 0, "orders": 2}


async def test_metrics_answer_without_the_backlog_when_postgres_is_down(
    app_with: AppFactory,
) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    async with (
        app_with(nowhere, metrics_enabled=True, db_pool_timeout_s=1) as app,
        http_client(app) as http,
    ):
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert samples(response.text, "keystone_events_undelivered") == []
    assert samples(response.text, "keystone_cache_hits_total")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"],
)
async def test_metrics_need_the_token(metered: FastAPI, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with http_client(metered) as http:
        response = await http.get("/metrics", headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/metrics"), 404)


async def test_metrics_are_not_in_the_openapi_document(metered: FastAPI) -> None:
    async with http_client(metered) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths


async def test_scrapes_are_neither_rate_limited_nor_host_checked(app_with: AppFactory) -> None:
    async with (
        app_with(
            metrics_enabled=True,
            metrics_token=METRICS_TOKEN,
            rate_limit_default="2/minute",
            trusted_hosts=["api.example.com"],
        ) as app,
        http_client(app, base_url="http://10.1.2.3:8000") as http,
    ):
        statuses = [(await http.get("/metrics", headers=SCRAPE)).status_code for _ in range(5)]
    assert statuses == [200] * 5
