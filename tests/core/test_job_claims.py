"""`PromptWorker` (app/core/job_claims.py) against a real Redis: the due jobs of a poll are claimed
together rather than one after another, yet each job runs once however many workers race for it,
and never more than `max_jobs` at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import create_pool, func
from arq.connections import RedisSettings

from app.core.job_claims import PromptWorker
from tests.conftest import Servers
from tests.faults.tcp_proxy import TcpProxy

QUEUE = "keystone:test-claims"
LINK_DELAY_S = 0.04  # each answer from Redis arrives this much later: a slow network
JOBS = 20


@pytest.fixture
async def redis(servers: Servers) -> RedisSettings:
    settings = RedisSettings.from_dsn(servers.redis_database(9))
    pool = await create_pool(settings)
    await pool.flushdb()
    await pool.aclose()
    return settings


@contextlib.asynccontextmanager
async def slow_link(target: RedisSettings) -> AsyncIterator[RedisSettings]:
    """A TCP hop to Redis that holds every answer for LINK_DELAY_S, as a distant server would."""
    proxy = TcpProxy(target.host, target.port, reply_delay_s=LINK_DELAY_S)
    await proxy.start()
    try:
        yield RedisSettings(host="127.0.0.1", port=proxy.port, database=target.database)
    finally:
        await proxy.cut()


async def enqueue(redis: RedisSettings, function: str, count: int) -> None:
    pool = await create_pool(redis)
    for n in range(count):
        await pool.enqueue_job(function, n, _job_id=f"job-{n}", _queue_name=QUEUE)
    await pool.aclose()


def worker(redis: RedisSettings, job: Any, **options: Any) -> PromptWorker:
    return PromptWorker(
        functions=[func(job, name="note")],
        queue_name=QUEUE,
        redis_settings=redis,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        **options,
    )


async def run(*workers: PromptWorker) -> None:
    try:
        await asyncio.gather(*(w.main() for w in workers))
    finally:
        await asyncio.gather(*(w.close() for w in workers))


async def test_the_due_jobs_of_a_poll_are_claimed_together_not_one_after_another(
    redis: RedisSettings,
) -> None:
    started: list[float] = []

    async def note(_ctx: dict[str, Any], _n: int) -> None:
        started.append(time.monotonic())

    await enqueue(redis, "note", JOBS)
    async with slow_link(redis) as slow:
        await run(worker(slow, note, max_jobs=50))

    assert len(started) == JOBS
    # Claimed one after another, each claim's five round trips would spread the starts over at
    # least JOBS * 5 * LINK_DELAY_S (4 s); claimed together, they start within a few delays.
    assert max(started) - min(started) < JOBS * LINK_DELAY_S


async def test_each_job_runs_once_when_two_workers_race_for_the_same_queue(
    redis: RedisSettings,
) -> None:
    runs: list[int] = []

    async def note(_ctx: dict[str, Any], n: int) -> None:
        runs.append(n)
        await asyncio.sleep(0.01)

    await enqueue(redis, "note", 60)
    await run(worker(redis, note, max_jobs=50), worker(redis, note, max_jobs=50))

    assert sorted(runs) == list(range(60))


async def test_no_more_than_max_jobs_run_at_once(redis: RedisSettings) -> None:
    running, peak, done = 0, 0, 0

    async def note(_ctx: dict[str, Any], _n: int) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1
        done += 1

    await enqueue(redis, "note", 12)
    await run(worker(redis, note, max_jobs=3))

    assert (done, peak) == (12, 3)
