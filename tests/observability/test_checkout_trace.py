"""One checkout, one trace: the request, its outbox write, the relay's deliveries, the inbox
handlers, the worker's payment and email jobs and the call to the payment provider are one tree
of spans, exported in memory here, with SQL, Redis and HTTP spans from the instrumentations,
and the log lines of the work carrying its trace and span ids.

The API and a real arq worker run in this process, wired to the HTTP payment adapter and the
fake provider (the sandbox keeps payments in Redis, with no HTTP call to trace)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.telemetry import Telemetry
from app.main import create_app
from tests.conftest import Servers, TestUser, eventually, make_settings, running_worker
from tests.fake_payment_provider import API_KEY, FakeProvider, running_provider
from tests.helpers import ORDERS, create_product, finished, keyed, order_body
from tests.mail import MailSink
from tests.otlp_receiver import OtlpReceiver


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def settings(
    servers: Servers, fake_provider: FakeProvider, receiver: OtlpReceiver, smtp_sink: MailSink
) -> Settings:
    return make_settings(
        await servers.migrated_database("keystone_traces"),
        servers.redis_database(15),
        payment_provider="http",
        payment_api_url=fake_provider.url,
        payment_api_key=API_KEY,
        smtp_port=smtp_sink.port,
        smtp_security="none",
        otel_exporter_otlp_endpoint=receiver.url,
        tracing_sample_ratio=1,
    )


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
def spans(app: FastAPI) -> InMemorySpanExporter:
    telemetry: Telemetry = app.state.telemetry
    assert telemetry.tracer_provider is not None
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """The JSON lines logged during the test, at INFO, with tracing on."""
    configure_logging(settings.model_copy(update={"log_level": "INFO"}))
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
    configure_logging(settings)


def lineage(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The span's name and its ancestors', up to the root of the trace."""
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def the(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert matching, f"no span {name!r} in {sorted({span.name for span in spans})}"
    return matching[0]


async def test_a_checkout_is_one_trace_from_request_to_payment_provider(
    client: httpx.AsyncClient,
    staff: TestUser,
    customer: TestUser,
    settings: Settings,
    spans: InMemorySpanExporter,
    fake_provider: FakeProvider,
    log_lines: io.StringIO,
) -> None:
    product = await create_product(client, staff, sku="TRACED", stock=5)
    trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {**keyed(customer), "traceparent": f"00-{trace_id}-{caller}-01"}
    async with running_worker(settings):
        placed = await client.post(ORDERS, json=order_body((product["id"], 1)), headers=headers)
        assert placed.status_code == 201, placed.text
        order = await finished(client, customer, placed.json()["id"], timeout_s=60)

        async def emailed() -> bool:
            names = {span.name for span in spans.get_finished_spans()}
            return "job orders.send_order_email" in names

        await eventually(emailed, timeout_s=30)
    assert order["status"] == "confirmed"

    trace = [
        span for span in spans.get_finished_spans() if span.context.trace_id == int(trace_id, 16)
    ]
    by_id = {span.context.span_id: span for span in trace}
    request = the(trace, "POST /api/v1/orders")
    assert request.kind == SpanKind.SERVER
    assert request.parent is not None
    assert f"{request.parent.span_id:016x}" == caller

    # The request wrote OrderPlaced; the relay delivered it to catalog, whose StockReserved
    # reached orders' handler, which asked for the payment job.
    reserve = the(trace, "deliver orders.OrderPlaced")
    assert lineage(reserve, by_id)[1] == "outbox write"
    assert lineage(reserve, by_id)[-1] == "POST /api/v1/orders"
    payment = the(trace, "job orders.take_payment")
    assert payment.kind == SpanKind.CONSUMER
    chain = lineage(payment, by_id)
    assert chain[-1] == "POST /api/v1/orders"
    assert "deliver catalog.StockReserved" in chain
    assert "deliver orders.OrderPlaced" in chain
    assert any(name.startswith("handle ") for name in chain)

    # The provider call is an HTTP client span under the payment job.
    [call, *_] = [span for span in trace if span.kind == SpanKind.CLIENT and span.name == "POST"]
    attributes = dict(call.attributes or {})
    assert str(attributes.get("url.full") or attributes.get("http.url")).startswith(
        fake_provider.url
    ), attributes
    assert "job orders.take_payment" in lineage(call, by_id)
    # The confirmation email is a job of the same trace.
    assert "POST /api/v1/orders" in lineage(the(trace, "job orders.send_order_email"), by_id)
    # SQL and Redis spans from the instrumentations, inside the same trace.
    systems = {
        (span.attributes or {}).get("db.system") or (span.attributes or {}).get("db.system.name")
        for span in trace
    }
    assert {"postgresql", "redis"} <= systems, systems

    # Every line a job writes names its trace and span; the payment job's lines of this
    # checkout name this trace and spans of it. (A sweep may run the job again, untraced by the
    # request: its lines name a trace of their own.)
    job_lines = [
        line for line in map(json.loads, log_lines.getvalue().splitlines()) if "job_try" in line
    ]
    untraced = [line for line in job_lines if not {"trace_id", "span_id"} <= line.keys()]
    assert not untraced, untraced
    ours = [
        line
        for line in job_lines
        if line["job"] == "orders.take_payment" and line["trace_id"] == trace_id
    ]
    assert ours
    assert {line["span_id"] for line in ours} <= {f"{s.context.span_id:016x}" for s in trace}
