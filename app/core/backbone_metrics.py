"""Instruments of the event backbone: the outbox relay and the job queues.

Counted once per scrape (nothing on a request's path): each module's undelivered outbox rows,
the age of its oldest one and its dead letters (Postgres, partial indexes), and the jobs due and
waiting in each queue this process hosts (Redis). Recorded as they happen: every delivered
event's lag (occurred -> delivered), every job's wait (due -> started) and outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.core.events.bus import EventBacklog, event_backlog
from app.core.events.outbox import UnitOfWork
from app.core.jobs import JobQueue
from app.core.logging import get_logger

# A scrape waits this long for the backlog and the queues, then answers without them.
REFRESH_TIMEOUT_S = 2.0
# Seconds: from what a healthy backbone shows (milliseconds) to a stalled one (minutes).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
_log = get_logger("keystone.telemetry")
Callback = Callable[[CallbackOptions], Iterable[Observation]]


class BackboneMetrics:
    def __init__(
        self,
        meter: Meter,
        event_stores: Mapping[str, UnitOfWork],
        jobs: JobQueue | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        self._event_stores = event_stores
        self._jobs = jobs
        self._queues = list(queues)
        self._backlog: dict[str, EventBacklog] = {}
        self._queued: dict[str, int] = {}
        self._create_gauges(meter)
        self._lag = meter.create_histogram(
            "keystone.events.delivery_lag",
            unit="s",
            description="From an event's commit to its delivery by the relay, per module",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self._wait = meter.create_histogram(
            "keystone.jobs.wait",
            unit="s",
            description="From a job being due to a worker starting it, per queue",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self._completed = meter.create_counter(
            "keystone.jobs.completed",
            unit="{job}",
            description="Job runs ended, per queue, function and outcome",
        )

    def _create_gauges(self, meter: Meter) -> None:
        """What each scrape counts (`refresh`) and the gauges read."""
        gauges = {
            "keystone.events.undelivered": (
                "{event}",
                "Outbox rows not yet relayed, per module",
                self._backlog_of("undelivered"),
            ),
            "keystone.events.oldest_undelivered_age": (
                "s",
                "Age of the oldest outbox row not yet relayed, per module (0 when none)",
                self._backlog_of("oldest_age_s"),
            ),
            "keystone.events.dead_letters": (
                "{delivery}",
                "Event deliveries given up on, per module (see `app.cli dead-letters`)",
                self._backlog_of("dead_letters"),
            ),
        }
        for name, (unit, description, callback) in gauges.items():
            meter.create_observable_gauge(name, [callback], unit=unit, description=description)
        if self._queues:
            meter.create_observable_gauge(
                "keystone.jobs.queued",
                [self._observe_queued],
                unit="{job}",
                description="Jobs due and not yet started, per queue",
            )

    def delivered(self, module: str, lag_s: float) -> None:
        self._lag.record(lag_s, {"module": module})

    def job_started(self, queue: str, wait_s: float) -> None:
        self._wait.record(max(0.0, wait_s), {"queue": queue})

    def job_ended(self, queue: str, function: str, outcome: str) -> None:
        self._completed.add(1, {"queue": queue, "function": function, "outcome": outcome})

    async def refresh(self) -> None:
        """Count what the gauges show, now (called by each scrape)."""
        self._backlog = await self._count_backlog()
        if self._jobs is not None and self._queues:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT_S):
                    self._queued = await self._jobs.due_counts(self._queues)
            except Exception as exc:
                self._queued = {}
                _log.warning("job queues not counted", error=repr(exc)[:300])

    async def _count_backlog(self) -> dict[str, EventBacklog]:
        backlog: dict[str, EventBacklog] = {}
        for module, uow in self._event_stores.items():
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT_S):
                    backlog[module] = await event_backlog(uow)
            except Exception as exc:
                # The series go missing for this scrape, which `absent()` alerts can see.
                _log.warning("event backlog not counted", module=module, error=repr(exc)[:300])
        return backlog

    def _backlog_of(self, field: str) -> Callback:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            backlog = self._backlog  # replaced whole by a scrape, never changed in place
            return [
                Observation(getattr(counts, field), {"module": module})
                for module, counts in backlog.items()
            ]

        return observe

    def _observe_queued(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"queue": queue}) for queue, count in self._queued.items()]
