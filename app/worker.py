"""The arq worker: `arq app.worker.WorkerSettings` runs every mounted module's jobs and crons.

Only this file and `app.core.jobs` know arq. The worker also runs the outbox relay, so events
raised by jobs (an order expiring) are delivered even when no API process is up.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import Retry, cron, func

from app.bootstrap import Runtime, build_runtime
from app.core.config import Settings, get_settings
from app.core.context import correlation_id_var
from app.core.jobs import CronJob, Job, RetryLater, redis_settings
from app.core.logging import configure_logging, get_logger

_log = get_logger("keystone.worker")
WORKER_DRAIN_S = 20


def _job(job: Job) -> Any:
    async def run(ctx: dict[Any, Any], *args: Any, correlation_id: str | None = None) -> Any:
        token = correlation_id_var.set(correlation_id)
        job_try: int = ctx.get("job_try", 1)
        try:
            with structlog.contextvars.bound_contextvars(
                request_id=correlation_id, job=job.name, job_try=job_try
            ):
                return await _attempt(job, job_try, args)
        finally:
            correlation_id_var.reset(token)

    return func(
        run,
        name=job.name,
        timeout=job.timeout_s,
        max_tries=job.max_tries,
        keep_result=job.keep_result_s,
    )


async def _attempt(job: Job, job_try: int, args: tuple[Any, ...]) -> Any:
    try:
        result = await job.run(*args)
    except RetryLater as exc:
        if job_try < job.max_tries:
            delay = job.backoff_s(job_try)
            _log.warning("job will retry", args=args, error=str(exc), retry_in_s=round(delay, 2))
            raise Retry(defer=delay) from exc
        _log.error("job gave up", args=args, error=str(exc))
        if job.on_exhausted is None:
            raise
        result = await job.on_exhausted(*args)
    _log.info("job done", args=args, result=result)
    return result


def _cron(job: CronJob) -> Any:
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        result = await job.run()
        _log.info("cron done", job=job.name, result=result)
        return result

    return cron(
        run,
        name=job.name,
        minute=job.minute,
        second=job.second,
        timeout=job.timeout_s,
        run_at_startup=job.run_at_startup,
    )


def worker_settings(settings: Settings, runtime: Runtime | None = None) -> dict[str, Any]:
    runtime = runtime or build_runtime(settings)

    async def startup(_ctx: dict[str, Any]) -> None:
        await runtime.start(checks_tokens=False)

    async def shutdown(_ctx: dict[str, Any]) -> None:
        await runtime.stop()

    return {
        "functions": [_job(job) for module in runtime.modules for job in module.jobs],
        "cron_jobs": [_cron(job) for module in runtime.modules for job in module.cron_jobs],
        "redis_settings": redis_settings(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": 20,
        # On SIGTERM/SIGINT: take no new job, let running ones finish for this long, then cancel
        # them, which hands them back to the queue for the next worker.
        "job_completion_wait": settings.worker_shutdown_grace_s,
        "job_timeout": 300,
        "keep_result": 3600,
    }


def __getattr__(name: str) -> Any:
    # arq's CLI reads `WorkerSettings`; build it from the environment only when asked.
    if name == "WorkerSettings":
        settings = get_settings()
        configure_logging(settings)
        value = worker_settings(settings)
        globals()["WorkerSettings"] = value
        return value
    raise AttributeError(name)
