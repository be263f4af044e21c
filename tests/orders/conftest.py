"""Order tests run a real arq worker beside the API, as production does: the payment saga's
jobs are taken from the real Redis and run against the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from arq import create_pool
from arq.worker import Worker

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.jobs import redis_settings
from app.worker import worker_settings


@pytest.fixture(autouse=True)
async def worker(settings: Settings, _clean_state: None) -> AsyncIterator[Worker]:
    runtime = build_runtime(settings)
    pool = await create_pool(redis_settings(settings))
    worker = Worker(
        **worker_settings(settings, runtime),
        redis_pool=pool,
        poll_delay=0.05,
        handle_signals=False,
    )
    task = asyncio.create_task(worker.main())
    yield worker
    jobs = [task, *worker.tasks.values()]
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    await pool.aclose()
    await runtime.stop()
