"""arq's worker, with the jobs of one poll claimed concurrently (ADR 0018).

arq 0.28 claims the due jobs it reads one after another: for each, a WATCH on the job's
in-progress key, two reads and a MULTI/EXEC, about five round trips that each wait for a turn
of a busy event loop. In a worker that also runs the outbox relay, a turn took 10-20 ms under
load, so claims capped the worker at about ten jobs a second while its CPU sat at a quarter:
payment jobs waited up to 8 s in the queue at 10 orders/s (docs/performance.md, item 21).
Here the claims of one poll run together, each exactly as arq makes it (the WATCH still
guarantees that of two workers racing for a job only one runs it), so a poll's jobs start after
one claim's round trips instead of the sum of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.exceptions import ResponseError, WatchError


class PromptWorker(Worker):
    """An arq `Worker` that claims the due jobs of a poll concurrently, within `max_jobs`, and
    says when it first polled its queue (`polled`): from then on it is taking jobs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polled = asyncio.Event()

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        self.polled.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        claims = []
        for job_id in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                break
            self.job_counter += 1
            claims.append(self._claim_and_start(job_id.decode()))
        await asyncio.gather(*claims)

    async def _claim_and_start(self, job_id: str) -> None:
        """Mark the job in progress unless another worker has (WATCH), then run it."""
        in_progress_key = in_progress_key_prefix + job_id
        async with self.pool.pipeline(transaction=True) as pipe:
            await pipe.watch(in_progress_key)
            running_elsewhere = await pipe.exists(in_progress_key)
            score = await pipe.zscore(self.queue_name, job_id)
            # Taken by another worker, finished and removed, or deferred again meanwhile.
            if running_elsewhere or not score or score > timestamp_ms():
                self._release_sem_dec_counter_on_complete()
                return
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            pipe.psetex(in_progress_key, int(self.in_progress_timeout_s * 1000), b"1")
            try:
                await pipe.execute()
            except (ResponseError, WatchError):  # another worker claimed it after our read
                self._release_sem_dec_counter_on_complete()
                return
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
