"""Trace context through the Redis Streams transport (split mode): the relay's publish continues
the trace of the span that wrote the event, the stream entry carries it beside the event, and
the consuming module's delivery and handlers continue it in their process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from app.bootstrap import build_runtime, truncate_all
from app.core import tracing
from app.core.events.base import IntegrationEvent
from app.core.events.bus import EventBus, Subscription
from app.core.events.consumer import ConsumerSettings, StreamConsumer
from app.core.events.outbox import Transaction
from app.core.events.streams import StreamPublisher, create_groups, stream_of
from app.runtime import Runtime
from tests.conftest import Servers, make_settings

STREAM = stream_of("traced")
GROUP = "catalog"
TUNING = ConsumerSettings(
    block_ms=50, batch_size=10, claim_idle_ms=100, max_deliveries=3, trim_interval_s=60
)


class Traced(IntegrationEvent):
    event_type: ClassVar[str] = "traced.Traced"


@pytest.fixture(scope="module")
async def runtime(servers: Servers) -> AsyncIterator[Runtime]:
    url = await servers.migrated_database("keystone_stream_traces")
    runtime = build_runtime(make_settings(url, servers.redis_database(7)))
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    yield runtime
    await runtime.stop()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process records its spans in memory while the test runs."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.stop_using(provider)


def consumer(runtime: Runtime, handled: list[str]) -> StreamConsumer:
    async def record(event: Traced, _tx: Transaction) -> None:
        handled.append(str(event.event_id))

    bus = EventBus(max_attempts=3)
    bus.subscribe(
        Subscription(Traced, "catalog.record_traced", record, runtime.module("catalog").uow)
    )
    return StreamConsumer(
        runtime.core.redis(), bus, group=GROUP, streams=[STREAM], consumer="c1", settings=TUNING
    )


async def entry_fields(redis: Redis) -> dict[bytes, bytes]:
    [(_id, fields)] = await redis.xrange(STREAM)
    return dict(fields)


def the(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [span for span in spans.get_finished_spans() if span.name == name]
    return span


async def test_the_consumer_continues_the_trace_the_publisher_carried(
    runtime: Runtime, spans: InMemorySpanExporter
) -> None:
    redis = runtime.core.redis()
    await redis.delete(STREAM)
    await create_groups(redis, {GROUP: [STREAM]})
    trace_id, writer = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    event = Traced()

    published = await StreamPublisher(redis).deliver(
        event, traceparent=f"00-{trace_id}-{writer}-01"
    )
    handled: list[str] = []
    assert published
    assert await consumer(runtime, handled).run_once() == 1

    assert handled == [str(event.event_id)]
    publish = the(spans, "publish traced.Traced")
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is not None
    assert f"{publish.parent.span_id:016x}" == writer
    carried = (await entry_fields(redis))[b"traceparent"].decode()
    assert carried == f"00-{trace_id}-{publish.context.span_id:016x}-01"
    delivery = the(spans, "deliver traced.Traced")
    assert delivery.kind == SpanKind.CONSUMER
    assert delivery.parent is not None
    assert delivery.parent.span_id == publish.context.span_id
    handler = the(spans, "handle catalog.record_traced")
    assert handler.parent is not None
    assert handler.parent.span_id == delivery.context.span_id
    # (Redis and SQL calls made outside these spans, when instrumented, are traces of their own.)
    assert {f"{span.context.trace_id:032x}" for span in (publish, delivery, handler)} == {trace_id}


async def test_a_publisher_that_records_no_trace_passes_the_writers_context_on(
    runtime: Runtime,
) -> None:
    tracing.use(None)  # this process records no trace of its own
    redis = runtime.core.redis()
    await redis.delete(STREAM)
    writer = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    assert await StreamPublisher(redis).deliver(Traced(), traceparent=writer)

    assert (await entry_fields(redis))[b"traceparent"].decode() == writer


async def test_an_event_written_outside_any_trace_is_published_without_one(
    runtime: Runtime,
) -> None:
    tracing.use(None)  # this process records no trace of its own
    redis = runtime.core.redis()
    await redis.delete(STREAM)

    assert await StreamPublisher(redis).deliver(Traced())

    assert b"traceparent" not in await entry_fields(redis)
