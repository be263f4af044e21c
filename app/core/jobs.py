"""The jobs port: the one place that knows arq, so another Redis queue could replace it here.

Modules declare `Job`s and `CronJob`s; `JobQueue.enqueue` sends one; `app/worker/` turns the
declarations into arq's worker settings. Jobs are sent only after the transaction that asked for
them has committed (see `UnitOfWork`), so a worker never sees an id that is not in the database yet.

Each module has a queue of its own (`keystone:<module>`), and a job goes to the queue of the
module its name starts with ("orders.take_payment" -> `keystone:orders`), wherever it is sent
from: a worker runs only the jobs of the modules it hosts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.config import Settings
from app.core.logging import get_logger

_log = get_logger("keystone.jobs")
# Redis unreachable: what arq's worker loop and the stream consumers end with, and wait out.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
RETRY_AFTER_REDIS_DOWN_S = 1.0

JobFunction = Callable[..., Awaitable[Any]]


class RetryLater(Exception):  # noqa: N818 - a request to the queue, not an error to report
    """Raised by a job for a transient failure: the queue runs it again after a backoff, up to
    the job's `max_tries`; then the job's `on_exhausted` runs instead of another try."""


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFunction
    timeout_s: int = 60
    max_tries: int = 5
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    on_exhausted: JobFunction | None = None
    # While a job's result is kept, the queue refuses another job with the same id; a job that
    # a sweep must be able to send again soon after it ran keeps none (0).
    keep_result_s: int | None = None

    def backoff_s(self, job_try: int) -> float:
        """Exponential backoff with full jitter: retries of many jobs do not arrive together."""
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** (job_try - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class CronJob:
    name: str
    run: Callable[[], Awaitable[Any]]
    minute: set[int] | None = None
    second: set[int] = field(default_factory=lambda: {0})
    timeout_s: int = 120
    run_at_startup: bool = False


@dataclass(frozen=True)
class JobRequest:
    name: str
    args: tuple[Any, ...] = ()
    defer_by: timedelta | None = None
    job_id: str | None = None
    # The request (or event chain) that asked for the job, so its logs can be tied back to it.
    correlation_id: str | None = None
    # W3C trace context of the span that asked for it: the job's span continues that trace.
    traceparent: str | None = None


QUEUE_PREFIX = "keystone:"


def queue_name(module: str) -> str:
    return f"{QUEUE_PREFIX}{module}"


def owning_module(job_name: str) -> str:
    """The module a job belongs to: its name's prefix, "orders" for "orders.take_payment"."""
    module, dot, rest = job_name.partition(".")
    if not dot or not module or not rest:
        raise ValueError(f"job name {job_name!r} must be '<module>.<job>'")
    return module


def redis_settings(settings: Settings) -> RedisSettings:
    redis = RedisSettings.from_dsn(settings.require_redis_url())
    redis.conn_timeout = max(1, int(settings.redis_timeout_s))
    redis.conn_retries = 1
    return redis


async def main_through_redis_outages(worker: Worker) -> None:
    """arq's worker loop, until it returns (burst mode) or is cancelled (a stop). arq ends it at
    the first Redis error (python-arq/arq#435); an outage is waited out here and the loop taken
    up again, as the stream consumers do, rather than the process exiting and its jobs waiting
    for a supervisor's restart backoff."""
    while True:
        try:
            await worker.main()
            return
        except REDIS_DOWN as exc:
            _log.warning("redis unavailable; retrying", queue=worker.queue_name, error=repr(exc))
            await asyncio.sleep(RETRY_AFTER_REDIS_DOWN_S)


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: ArqRedis | None = None

    async def _connection(self) -> ArqRedis:
        if self._pool is None:
            self._pool = await create_pool(redis_settings(self._settings))
        return self._pool

    async def enqueue(self, request: JobRequest) -> None:
        # arq's pool has a connect timeout but no read timeout: a Redis that accepts and never
        # answers would hold the caller (a request, after its commit) forever.
        async with asyncio.timeout(2 * self._settings.redis_timeout_s + 1):
            await self._enqueue(request)

    async def _enqueue(self, request: JobRequest) -> None:
        pool = await self._connection()
        queue = queue_name(owning_module(request.name))
        await pool.enqueue_job(
            request.name,
            *request.args,
            _defer_by=request.defer_by,
            _job_id=request.job_id,
            _queue_name=queue,
            correlation_id=request.correlation_id,
            traceparent=request.traceparent,
        )
        _log.info("job enqueued", job=request.name, job_id=request.job_id, queue=queue)

    async def due_counts(self, queues: list[str]) -> dict[str, int]:
        """Jobs due now and not yet taken, per queue. arq keeps a queue as a sorted set scored
        by when each job is due; deferred jobs (an order's expiry, a retry's backoff) are not
        counted until their time comes."""
        pool = await self._connection()
        now_ms = int(time.time() * 1000)
        async with pool.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcount(queue, "-inf", now_ms)
            counts = await pipe.execute()
        return {queue: int(count) for queue, count in zip(queues, counts, strict=True)}

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
