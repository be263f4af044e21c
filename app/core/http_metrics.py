"""The HTTP server's RED metrics, recorded by the request middleware with prometheus_client.

They keep the names and labels FastAPI's native OpenTelemetry hooks gave them (the rules and
dashboards query them): `http_server_request_duration_seconds{http_route, http_request_method,
http_response_status_code}` and `http_server_active_requests{http_request_method}`. Recorded
here rather than by FastAPI's hooks: through the OpenTelemetry SDK a request cost ~40 µs of CPU
(three measurements whose attributes are copied, checked and hashed, plus the hooks' wrapper),
a fifth of a cached read; prometheus_client observes a labelled child in ~1.5 µs
(docs/performance.md, "Observability tax").
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

# OpenTelemetry's advice for http.server.request.duration, as FastAPI's hooks used.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Any other method is counted as "_OTHER": a label value per made-up method would grow without end.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_route", "http_request_method", "http_response_status_code"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._active = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ["http_request_method"],
            registry=registry,
        )

    def started(self, method: str) -> None:
        self._active.labels(method).inc()

    def finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        self._active.labels(method).dec()
        # A request no route matched (a 404) has no route label, as before.
        self._duration.labels(route or "", method, str(status)).observe(seconds)
