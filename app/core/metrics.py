"""Instruments read when Prometheus scrapes, never on a request: readiness, the database pools,
and what modules count in their own tables (orders by status reached).

Each `ScrapedMetric` is read once per scrape, concurrently and within SCRAPE_READ_TIMEOUT_S; the
readings are kept until the next scrape and handed to the OpenTelemetry callbacks as the
registry is collected. A reading that fails or times out leaves its series out of that scrape
(the log says why), which `absent()` can alert on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.core.db import Database
from app.core.health import Readiness
from app.core.logging import get_logger

SCRAPE_READ_TIMEOUT_S = 2.0
_log = get_logger("keystone.metrics")
Reading = tuple[float, Mapping[str, str]]


@dataclass(frozen=True)
class ScrapedMetric:
    """One instrument and how to read its values now (a counter's must never decrease)."""

    name: str
    description: str
    unit: str
    read: Callable[[], Awaitable[Sequence[Reading]]]
    counter: bool = False


class ScrapedInstruments:
    """Registers each metric as an observable instrument and reads them all on `refresh`."""

    def __init__(self, meter: Meter, metrics: Sequence[ScrapedMetric]) -> None:
        self._metrics = metrics
        self._readings: dict[str, Sequence[Reading]] = {}
        for metric in metrics:
            create = (
                meter.create_observable_counter if metric.counter else meter.create_observable_gauge
            )
            create(
                metric.name,
                [self._observer(metric.name)],
                unit=metric.unit,
                description=metric.description,
            )

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, dict(labels)) for value, labels in self._readings.get(name, ())
            ]

        return observe

    async def refresh(self) -> None:
        results = await asyncio.gather(*(self._read(metric) for metric in self._metrics))
        # Replaced whole, so a collection never sees half of one scrape and half of another.
        self._readings = {
            metric.name: readings
            for metric, readings in zip(self._metrics, results, strict=True)
            if readings is not None
        }

    async def _read(self, metric: ScrapedMetric) -> Sequence[Reading] | None:
        try:
            async with asyncio.timeout(SCRAPE_READ_TIMEOUT_S):
                return await metric.read()
        except Exception as exc:
            _log.warning("metric not read", metric=metric.name, error=repr(exc)[:300])
            return None


def core_metrics(readiness: Readiness, databases: Mapping[str, Database]) -> list[ScrapedMetric]:
    """What every process serving requests reports about itself; `databases` are the hosted
    modules' own (each module connects with its own login, so each has its own pools)."""

    async def ready() -> Sequence[Reading]:
        checks = await readiness.run()
        return [(1 if result == "ok" else 0, {"check": name}) for name, result in checks.items()]

    async def pools() -> Sequence[Reading]:
        readings: list[Reading] = []
        for module, database in databases.items():
            for usage in database.pool_usage():
                labels = {"pool": usage.pool, "module": module}
                readings.append((usage.in_use, {**labels, "state": "in_use"}))
                readings.append((usage.idle, {**labels, "state": "idle"}))
        return readings

    async def limits() -> Sequence[Reading]:
        return [
            (usage.limit, {"pool": usage.pool, "module": module})
            for module, database in databases.items()
            for usage in database.pool_usage()
        ]

    return [
        ScrapedMetric(
            "keystone.readiness",
            "Readiness checks as /readyz runs them: 1 passing, 0 failing",
            "{check}",
            ready,
        ),
        ScrapedMetric(
            "keystone.db.pool.connections",
            "Database connections per pool, checked out (in_use) or idle",
            "{connection}",
            pools,
        ),
        ScrapedMetric(
            "keystone.db.pool.limit",
            "The most connections each pool may hold (requests wait beyond it)",
            "{connection}",
            limits,
        ),
    ]
