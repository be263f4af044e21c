"""One trace per request across processes: the request, the outbox write, the relay's delivery,
each inbox handler, the jobs it leads to, and their SQL, Redis and HTTP calls.

The W3C `traceparent` of the span that wrote an event travels beside the event, outside its
contract: in its outbox row, and in split mode in its Redis stream entry (app/core/events/
streams.py); that of the span that asked for a job travels in the job's arguments. The relay,
the stream consumers and the worker continue the trace from there. SQL (SQLAlchemy), Redis and
httpx spans come from the maintained OpenTelemetry instrumentations, installed once per process
when tracing is on and recording into this process's tracer provider (`use`): the API's is
built by `Telemetry`, the worker's by `app.worker`. With tracing off nothing is installed and
`span` costs one `None` check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from app.core.context import traceparent_var

_propagator = TraceContextTextMapPropagator()


class _Current:
    """The tracer provider of this process, replaceable (OpenTelemetry's global is set once per
    process; tests build many apps in one)."""

    provider: trace.TracerProvider | None = None
    instrumented = False


class _DelegatingTracerProvider(trace.TracerProvider):
    """What the instrumentations are given: each span goes to the provider current then."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _DelegatingTracer(args, kwargs)


class _DelegatingTracer(trace.Tracer):
    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        self._args, self._kwargs = args, kwargs

    def _tracer(self) -> trace.Tracer:
        provider = _Current.provider or trace.NoOpTracerProvider()
        return provider.get_tracer(*self._args, **self._kwargs)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


def instrument_libraries() -> None:
    """Installs the SQLAlchemy, Redis and httpx instrumentations (once per process): call it
    before the engine and clients are built."""
    if _Current.instrumented:
        return
    provider = _DelegatingTracerProvider()
    # It declares SQLAlchemy < 2.1 and we run 2.1: its engine events are unchanged there, and
    # tests/observability/test_checkout_trace.py proves the SQL spans still come.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _Current.instrumented = True


def use(provider: trace.TracerProvider | None) -> None:
    """The provider this process's spans go to from now on (None: tracing off)."""
    _Current.provider = provider


def stop_using(provider: trace.TracerProvider) -> None:
    """Before `provider` shuts down: spans stop going to it, if they still did."""
    if _Current.provider is provider:
        _Current.provider = None


def current_traceparent() -> str | None:
    """The `traceparent` of the span running now, else the one the request came with (when
    this process records no trace of its own), else None."""
    carrier: dict[str, str] = {}
    if _Current.provider is not None:
        _propagator.inject(carrier)
    return carrier.get("traceparent") or traceparent_var.get()


@contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[None]:
    """A span of this process's tracer, continuing `traceparent` when given (work that another
    process, or an earlier transaction, asked for); nothing when tracing is off."""
    provider = _Current.provider
    if provider is None:
        yield
        return
    context = _propagator.extract({"traceparent": traceparent}) if traceparent else None
    tracer = provider.get_tracer("keystone")
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes):
        yield
