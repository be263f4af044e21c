"""Keystone's Grafana dashboards as code: `python deploy/observability/grafana/dashboards.py`
writes dashboards/*.json, which Grafana loads through provisioning/. The JSON is committed (a
Grafana reads files, not Python); tests/observability/test_dashboards.py checks it matches this
file, and the live test evaluates every query against a Prometheus that scraped Keystone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SELECTOR = 'job="$job"'
DURATION = "http_server_request_duration_seconds"
FIVE_XX = ',http_response_status_code=~"5.."'
POOL = "keystone_db_pool_connections"
IN_USE, IDLE = ',state="in_use"', ',state="idle"'
OLDEST = "keystone_events_oldest_undelivered_age_seconds"
JOBS = "keystone_jobs_completed_total"
QUANTILES = {"p99": "0.99", "p50": "0.5"}
Panel = dict[str, Any]


def panel(
    title: str, queries: dict[str, str], unit: str = "short", kind: str = "timeseries"
) -> Panel:
    """A panel of one or more queries, each with the legend that names its series."""
    return {
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend}
            for index, (legend, expr) in enumerate(queries.items())
        ],
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    for index, item in enumerate(panels):
        # Two panels a row, each half the 24-column grid.
        item["id"] = index + 1
        item["gridPos"] = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)}
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["keystone"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "job",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(keystone_readiness, job)",
                    "current": {"text": "keystone", "value": "keystone"},
                },
            ]
        },
        "panels": panels,
    }


def series(metric: str, matchers: str = "") -> str:
    """`metric{job="$job",<matchers>}`: every query reads the chosen deployment only."""
    return f"{metric}{{{SELECTOR}{matchers}}}"


def rate(metric: str, matchers: str = "", by: str = "") -> str:
    """The per-second rate of a counter, summed (by the labels in `by`, if any)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series(metric, matchers)}[$__rate_interval]))"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/ {denominator}"


def _quantile(q: str, route_filter: str = "") -> str:
    return (
        f"histogram_quantile({q}, sum by (le, http_route) "
        f"(rate({DURATION}_bucket{{{SELECTOR}{route_filter}}}[$__rate_interval])))"
    )


def overview() -> dict[str, Any]:
    errors = series(f"{DURATION}_count", FIVE_XX)
    every = series(f"{DURATION}_count")
    budget_used = (
        f"(sum by (job) (rate({errors}[30d])) or 0 * sum by (job) (rate({every}[30d])))"
        f" / sum by (job) (rate({every}[30d])) / 0.001"
    )
    return dashboard(
        "keystone-overview",
        "Keystone: service overview",
        "Rate, errors and duration per route; the SLOs of docs/slo.md and their budgets.",
        [
            panel(
                "Requests per second by route",
                {"{{http_route}}": rate(f"{DURATION}_count", by="http_route")},
                "reqps",
            ),
            panel(
                "Server errors per second by route",
                {
                    "{{http_route}} {{http_response_status_code}}": rate(
                        f"{DURATION}_count", FIVE_XX, "http_route, http_response_status_code"
                    )
                },
                "reqps",
            ),
            panel("p99 duration by route", {"{{http_route}}": _quantile("0.99")}, "s"),
            panel("p50 duration by route", {"{{http_route}}": _quantile("0.5")}, "s"),
            panel(
                "Availability SLI: server-error ratio (objective 0.1%)",
                {
                    "5m": f"keystone:http_errors:ratio_rate5m{{{SELECTOR}}}",
                    "1h": f"keystone:http_errors:ratio_rate1h{{{SELECTOR}}}",
                    "1d": f"keystone:http_errors:ratio_rate1d{{{SELECTOR}}}",
                },
                "percentunit",
            ),
            panel(
                "Latency SLI: share slower than 500 ms (objective 1%)",
                {
                    "5m": f"keystone:http_slow:ratio_rate5m{{{SELECTOR}}}",
                    "1h": f"keystone:http_slow:ratio_rate1h{{{SELECTOR}}}",
                    "1d": f"keystone:http_slow:ratio_rate1d{{{SELECTOR}}}",
                },
                "percentunit",
            ),
            panel(
                "Availability budget left (30 days)",
                {"budget left": f"1 - {budget_used}"},
                "percentunit",
                "stat",
            ),
            panel(
                "Requests in flight",
                {"{{instance}}": f"sum by (instance) (http_server_active_requests{{{SELECTOR}}})"},
            ),
            panel(
                "Readiness checks (1 passing)",
                {
                    "{{instance}} {{check}}": "min by (instance, check) ("
                    + series("keystone_readiness")
                    + ")"
                },
            ),
            panel("Scraped instances", {"{{instance}}": f"up{{{SELECTOR}}}"}),
        ],
    )


def checkout() -> dict[str, Any]:
    transitions = "keystone_orders_transitions_total"
    outcomes = series(transitions, ',status=~"pending|confirmed|payment_failed|rejected|refunded"')
    confirmed = series(transitions, ',status="confirmed"')
    placed = series(transitions, ',status="pending"')
    checkout_route = ',http_route="/api/v1/orders",http_request_method="POST"'
    return dashboard(
        "keystone-checkout",
        "Keystone: checkout saga and events",
        "Orders through the saga (placed, reserved, paid, confirmed, failed, refunded) and the "
        "integration events carrying it between modules.",
        [
            panel(
                "Orders reaching each status per second",
                {"{{status}}": f"keystone:orders_transitions:rate5m{{{SELECTOR}}}"},
                "ops",
            ),
            panel(
                "Orders per hour: placed, confirmed, failed, refunded",
                {"{{status}}": f"max by (status) (increase({outcomes}[1h]))"},
            ),
            panel(
                "Confirmed per placed (last hour)",
                {
                    "confirmed/placed": ratio(
                        f"max(increase({confirmed}[1h]))", f"max(increase({placed}[1h]))"
                    )
                },
                "percentunit",
                "stat",
            ),
            panel(
                "POST /api/v1/orders duration",
                {"p99": _quantile("0.99", checkout_route), "p50": _quantile("0.5", checkout_route)},
                "s",
            ),
            panel(
                "POST /api/v1/orders answers per second",
                {
                    "{{http_response_status_code}}": rate(
                        f"{DURATION}_count", checkout_route, "http_response_status_code"
                    )
                },
                "reqps",
            ),
            panel(
                "Undelivered events by module (outbox)",
                {"{{module}}": f"max by (module) (keystone_events_undelivered{{{SELECTOR}}})"},
            ),
            panel(
                "Dead letters by module",
                {"{{module}}": f"max by (module) (keystone_events_dead_letters{{{SELECTOR}}})"},
            ),
            panel(
                "Event delivery lag (commit to delivery), p99 and p50",
                {f"{{{{module}}}} {name}": _lag_quantile(q) for name, q in QUANTILES.items()},
                "s",
            ),
            panel(
                "Oldest undelivered event's age by module",
                {"{{module}}": f"max by (module) ({series(OLDEST)})"},
                "s",
            ),
            panel(
                "Job runs per second by outcome",
                {"{{function}} {{outcome}}": rate(JOBS, by="function, outcome")},
                "ops",
            ),
            panel(
                "Payment circuit open (per process)",
                {"{{instance}}": series("keystone_payments_circuit_open")},
            ),
        ],
    )


def _lag_quantile(q: str) -> str:
    buckets = series("keystone_events_delivery_lag_seconds_bucket")
    return f"histogram_quantile({q}, sum by (le, module) (rate({buckets}[$__rate_interval])))"


def database_and_redis() -> dict[str, Any]:
    return dashboard(
        "keystone-database-redis",
        "Keystone: database and Redis",
        "Connection pools against their limits; the response cache and rate limiter on Redis.",
        [
            panel(
                "Pool connections in use",
                {"{{instance}} {{pool}}": f"sum by (instance, pool) ({series(POOL, IN_USE)})"},
            ),
            panel(
                "Pool utilisation (in use / limit)",
                {"{{instance}} {{pool}}": f"keystone:db_pool:utilisation{{{SELECTOR}}}"},
                "percentunit",
            ),
            panel(
                "Idle pool connections",
                {"{{instance}} {{pool}}": f"sum by (instance, pool) ({series(POOL, IDLE)})"},
            ),
            panel(
                "Pool limits",
                {
                    "{{instance}} {{pool}}": "sum by (instance, pool) ("
                    + series("keystone_db_pool_limit")
                    + ")"
                },
            ),
            panel(
                "Response cache hit ratio",
                {"hit ratio": f"keystone:cache_hit:ratio_rate5m{{{SELECTOR}}}"},
                "percentunit",
            ),
            panel(
                "Response cache reads per second",
                {
                    "hits": rate("keystone_cache_hits_total"),
                    "misses": rate("keystone_cache_misses_total"),
                },
                "ops",
            ),
            panel(
                "Redis failures served around per second",
                {
                    "cache": rate("keystone_cache_backend_errors_total"),
                    "rate limiter": rate("keystone_rate_limit_storage_failures_total"),
                },
                "ops",
            ),
            panel(
                "Scrape duration (backlog, readiness and order counts are queried then)",
                {"{{instance}}": f"scrape_duration_seconds{{{SELECTOR}}}"},
                "s",
            ),
        ],
    )


def cost() -> dict[str, Any]:
    cpu = f"process_cpu_seconds_total{{{SELECTOR}}}"
    return dashboard(
        "keystone-cost",
        "Keystone: cost",
        "What the API spends serving its traffic: CPU and memory per instance, requests per "
        "CPU second, and where request time goes by route (docs/cost.md turns these into money).",
        [
            panel("CPU cores used by instance", {"{{instance}}": f"rate({cpu}[$__rate_interval])"}),
            panel(
                "Requests per CPU second",
                {
                    "all instances": ratio(
                        rate(f"{DURATION}_count"), rate("process_cpu_seconds_total")
                    )
                },
            ),
            panel(
                "Request time by route (seconds per second)",
                {"{{http_route}}": rate(f"{DURATION}_sum", by="http_route")},
            ),
            panel(
                "Resident memory by instance",
                {"{{instance}}": f"process_resident_memory_bytes{{{SELECTOR}}}"},
                "bytes",
            ),
            panel(
                "Database connections held",
                {"{{pool}}": f"sum by (pool) ({series(POOL)})"},
            ),
            panel(
                "Outbox rows waiting (storage and relay work)",
                {"{{module}}": f"max by (module) (keystone_events_undelivered{{{SELECTOR}}})"},
            ),
        ],
    )


DASHBOARDS = {
    "keystone-overview.json": overview,
    "keystone-checkout.json": checkout,
    "keystone-database-redis.json": database_and_redis,
    "keystone-cost.json": cost,
}


def rendered() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in rendered().items():
        (HERE / "dashboards" / name).write_text(text)
