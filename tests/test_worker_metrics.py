"""The worker serves GET /metrics of its own (behind METRICS_TOKEN, as the API's): its job
queues' depth, how long jobs waited and how they ended, and the lag of the events its relay
delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar
from uuid import uuid4

import httpx
import pytest

from app.bootstrap import truncate_all
from app.core.config import Settings
from app.core.events.base import IntegrationEvent
from app.core.jobs import JobRequest
from app.worker.workers import Workers
from tests.conftest import Servers, eventually, make_settings
from tests.test_telemetry import METRICS_TOKEN, SCRAPE, samples


class WorkerNoticed(IntegrationEvent):
    event_type: ClassVar[str] = "tests.WorkerNoticed"


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    """A database and Redis db of their own: no other worker takes these jobs."""
    url = await servers.migrated_database("keystone_worker_metrics")
    return make_settings(
        url,
        servers.redis_database(9),
        metrics_enabled=True,
        metrics_token=METRICS_TOKEN,
        worker_metrics_host="127.0.0.1",
        worker_metrics_port=0,
    )


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[Workers]:
    workers = Workers(settings, poll_delay_s=0.05)
    await truncate_all(workers.runtime)
    await workers.runtime.core.redis().flushdb()  # jobs other tests left in this Redis db
    task = asyncio.create_task(workers.run())
    await eventually(lambda: _serving(workers))
    try:
        yield workers
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _serving(workers: Workers) -> bool:
    try:
        return workers.metrics_port is not None
    except AssertionError:  # not bound yet
        return False


async def scrape(workers: Workers, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{workers.metrics_port}/metrics", headers=headers)


async def test_the_worker_serves_its_jobs_and_relay_metrics(workers: Workers) -> None:
    runtime = workers.runtime
    await runtime.core.jobs().enqueue(JobRequest("orders.expire_order", (str(uuid4()),)))
    async with runtime.module("catalog").uow.begin() as tx:
        tx.publish(WorkerNoticed())

    async def recorded() -> bool:
        body = (await scrape(workers, SCRAPE)).text
        return bool(samples(body, "keystone_jobs_completed_total")) and bool(
            samples(body, "keystone_events_delivery_lag_seconds_count")
        )

    await eventually(recorded)
    body = (await scrape(workers, SCRAPE)).text
    [completed] = samples(body, "keystone_jobs_completed_total")
    assert [completed.labels[k] for k in ("queue", "function", "outcome")] == [
        "keystone:orders",
        "orders.expire_order",
        "done",
    ]
    assert completed.value == 1
    [waited] = samples(body, "keystone_jobs_wait_seconds_count")
    assert (waited.labels["queue"], waited.value) == ("keystone:orders", 1)
    lag = {
        s.labels["module"]: s.value
        for s in samples(body, "keystone_events_delivery_lag_seconds_count")
    }
    assert lag == {"catalog": 1}
    queued = {s.labels["queue"]: s.value for s in samples(body, "keystone_jobs_queued")}
    assert queued["keystone:orders"] == 0
    assert {s.labels["module"] for s in samples(body, "keystone_events_undelivered")} == {
        "users",
        "catalog",
        "orders",
    }


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_worker_metrics_need_the_token(workers: Workers, headers: dict[str, str]) -> None:
    response = await scrape(workers, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_worker_serves_nothing_else(workers: Workers) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{workers.metrics_port}/", headers=SCRAPE)
    assert response.status_code == 404


class _ReadinessAtLog:
    """The worker's logger: what was true when "workers started" was logged, looked at in
    that very call."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.seen: dict[str, bool] | None = None

    def info(self, event: str, **_fields: object) -> None:
        if event != "workers started":
            return
        try:
            bound = self.workers.metrics_port is not None
        except AssertionError:  # the metrics server is not listening yet
            bound = False
        polled = all(worker.polled.is_set() for worker in self.workers._workers)
        self.seen = {"metrics bound": bound, "every worker polled": polled}


async def test_started_is_logged_once_the_worker_is_ready(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A supervisor or test reading the log scrapes /metrics right after the line."""
    workers = Workers(settings, poll_delay_s=0.05)
    probe = _ReadinessAtLog(workers)
    monkeypatch.setattr("app.worker.workers._log", probe)
    task = asyncio.create_task(workers.run())
    try:
        await eventually(lambda: _logged(probe))
        response = await scrape(workers, SCRAPE)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert probe.seen == {"metrics bound": True, "every worker polled": True}
    assert response.status_code == 200


async def _logged(probe: _ReadinessAtLog) -> bool:
    return probe.seen is not None
