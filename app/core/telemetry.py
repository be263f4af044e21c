"""Metrics and traces through OpenTelemetry, recorded by FastAPI's native hooks.

FastAPI (0.165) records, per request, a server span named by the route template (continuing an
incoming `traceparent`) with spans for dependency resolution, the endpoint and serialisation
under it. Its metrics hooks stay off: the request middleware records the same
`http_server_request_duration_seconds` and `http_server_active_requests` with prometheus_client
into the registry below, at a tenth of the SDK's cost per request (app/core/http_metrics.py).
This module builds the SDK providers it hands FastAPI, and that registry:

- metrics (METRICS_ENABLED): a MeterProvider read by the Prometheus client at `GET /metrics`, in
  a registry of this app's own. Beyond FastAPI's instruments, observable ones read counters the
  app keeps anyway (response cache, rate-limit storage), and the event backbone's
  (app/core/backbone_metrics.py: outbox backlog and age, delivery lag, job queues), counted in
  Postgres and Redis once per scrape: nothing is added to a request for them. The worker serves
  its own (app/core/metrics_server.py).
- traces (OTEL_EXPORTER_OTLP_ENDPOINT): a TracerProvider recording TRACING_SAMPLE_RATIO of new
  traces (a trace begun upstream keeps the caller's decision), batched to the collector over
  OTLP/HTTP.

With both off FastAPI's hooks stay off: asking per request whether a provider exists costs ~3%
of a cached read. Probes and scrapes are never recorded.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from pydantic import SecretStr

from app.core import tracing
from app.core.backbone_metrics import BackboneMetrics
from app.core.cache import ResponseCache
from app.core.config import Settings
from app.core.errors import UnauthorizedError
from app.core.events.outbox import UnitOfWork
from app.core.http_metrics import HttpMetrics
from app.core.http_security import PROBE_PATHS
from app.core.jobs import JobQueue
from app.core.logging import get_logger
from app.core.metrics import ScrapedInstruments, ScrapedMetric
from app.core.ratelimit.sliding_window import RateLimiter

METRICS_PATH = "/metrics"
_log = get_logger("keystone.telemetry")
Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _unrecorded(scope: MutableMapping[str, Any]) -> bool:
    return scope["path"] in PROBE_PATHS


class Telemetry:
    """The providers FastAPI records into (None when off) and what `GET /metrics` serves."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: ResponseCache | None,
        rate_limiter: RateLimiter | None,
        event_stores: Mapping[str, UnitOfWork],
        jobs: JobQueue | None = None,
        queues: Sequence[str] = (),
        scraped: Sequence[ScrapedMetric] = (),
        traces: bool = True,
    ) -> None:
        """`cache` and `rate_limiter` are the API's; `jobs` and `queues`, the worker's (the
        queues whose depth it reports); `scraped`, what is read at each scrape. `traces`: False
        when the process's tracer provider is someone else's (the worker's is its entry
        point's, set up before the runtime it instruments)."""
        resource = _resource(settings)
        self.tracer_provider = tracer_provider(settings) if traces else None
        if traces:
            # Events, jobs and the instrumented libraries record into it (app/core/tracing.py).
            tracing.use(self.tracer_provider)
        self.registry = CollectorRegistry()
        self.http: HttpMetrics | None = None
        self.meter_provider: MeterProvider | None = None
        self.backbone: BackboneMetrics | None = None
        self._scraped: ScrapedInstruments | None = None
        if settings.metrics_enabled:
            self.http = HttpMetrics(self.registry)
            self.meter_provider = MeterProvider(
                metric_readers=[PrometheusMetricReader(registry=self.registry)],
                resource=resource,
                shutdown_on_exit=False,
            )
            # CPU seconds and memory of the process, read from /proc at scrape: the cost signals.
            ProcessCollector(registry=self.registry)
            meter = self.meter_provider.get_meter("keystone")
            if cache is not None and rate_limiter is not None:
                self._observe(meter, cache, rate_limiter)
            self.backbone = BackboneMetrics(meter, event_stores, jobs, queues)
            self._scraped = ScrapedInstruments(meter, scraped)

    def fastapi_config(self) -> TelemetryConfig:
        return {
            "tracing": self.tracer_provider is not None,
            "tracer_provider": self.tracer_provider,
            # Recorded by the request middleware into `http` (see the module's docstring).
            "metrics": False,
            "meter_provider": None,
            "logs": False,  # structlog writes the logs
            "auto_configure": False,  # exporters are chosen here, from the settings
            "exclude": _unrecorded,
        }

    def _observe(self, meter: Meter, cache: ResponseCache, rate_limiter: RateLimiter) -> None:
        stats = cache.stats
        counters = {
            "keystone.cache.hits": ("Response cache reads served from a copy", lambda: stats.hits),
            "keystone.cache.misses": ("Response cache reads computed", lambda: stats.misses),
            "keystone.cache.backend_errors": (
                "Redis failures the response cache served around",
                lambda: stats.backend_errors,
            ),
            "keystone.rate_limit.storage_failures": (
                "Rate-limit checks Redis could not answer (requests let through)",
                lambda: rate_limiter.storage_failures,
            ),
        }
        for name, (description, read) in counters.items():
            meter.create_observable_counter(
                name, [_reading(read)], unit="{event}", description=description
            )

    async def scrape(self) -> bytes:
        """The Prometheus text of every instrument, with the event backlog counted now."""
        if self.backbone is not None:
            await self.backbone.refresh()
        if self._scraped is not None:
            await self._scraped.refresh()
        # Collecting and rendering is CPU work: a thread, not the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)

    async def shutdown(self) -> None:
        """Sends the spans still batched (in a thread: it waits on the collector), then stops."""
        if self.tracer_provider is not None:
            tracing.stop_using(self.tracer_provider)
            await asyncio.to_thread(self.tracer_provider.shutdown)
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _reading(read: Callable[[], int]) -> Callback:
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(read())]

    return observe


def _resource(settings: Settings) -> Resource:
    return Resource.create(
        {
            SERVICE_NAME: settings.app_name,
            SERVICE_VERSION: settings.release,
            "deployment.environment.name": settings.app_env.value,
        }
    )


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """The provider of a process (the API's, a worker's), None when tracing is off."""
    if settings.otel_exporter_otlp_endpoint is None:
        return None
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
        resource=_resource(settings),
        shutdown_on_exit=False,
    )
    # Headers, timeout and compression come from the standard OTEL_EXPORTER_OTLP_* variables.
    exporter = OTLPSpanExporter(endpoint=f"{settings.otel_exporter_otlp_endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def metrics_router(telemetry: Telemetry, token: SecretStr | None) -> APIRouter:
    """`GET /metrics` (not in the OpenAPI document); with a token, only for its bearer."""
    router = APIRouter(include_in_schema=False)
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None

    @router.get(METRICS_PATH)
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        given = (authorization or "").encode()
        if expected is not None and not hmac.compare_digest(given, expected):
            raise UnauthorizedError(
                "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(await telemetry.scrape(), media_type=CONTENT_TYPE_LATEST)

    return router
