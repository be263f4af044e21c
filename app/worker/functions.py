"""A module's `Job`s and `CronJob`s as arq functions: retries with backoff for transient
failures, the request id and trace carried from the sender, and the backbone metrics."""

from __future__ import annotations

import time
from typing import Any

import structlog
from arq import Retry, cron, func
from opentelemetry.trace import SpanKind

from app.core import tracing
from app.core.backbone_metrics import BackboneMetrics
from app.core.config import Settings
from app.core.context import correlation_id_var
from app.core.jobs import CronJob, Job, RetryLater, queue_name, redis_settings
from app.core.logging import get_logger, working_on
from app.core.module import Module
from app.core.peers import PeerUnavailableError

_log = get_logger("keystone.worker")
# A job that needs a module served elsewhere, and finds it unreachable, is run again later.
_TRANSIENT = (RetryLater, PeerUnavailableError)


def _job(job: Job, queue: str, metrics: BackboneMetrics | None) -> Any:
    async def run(
        ctx: dict[Any, Any],
        *args: Any,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> Any:
        token = correlation_id_var.set(correlation_id)
        job_try: int = ctx.get("job_try", 1)
        if metrics is not None and ctx.get("score"):  # when the job was due, in ms
            metrics.job_started(queue, time.time() - ctx["score"] / 1000)
        outcome = "failed"
        try:
            with (
                structlog.contextvars.bound_contextvars(
                    request_id=correlation_id, job=job.name, job_try=job_try
                ),
                tracing.span(
                    f"job {job.name}",
                    traceparent=traceparent,
                    kind=SpanKind.CONSUMER,
                    attributes={"messaging.system": "arq", "keystone.job.try": job_try},
                ),
                working_on(job.name),
            ):
                result = await _attempt(job, job_try, args)
                outcome = "done"
                return result
        except Retry:
            outcome = "retried"
            raise
        finally:
            correlation_id_var.reset(token)
            if metrics is not None:
                metrics.job_ended(queue, job.name, outcome)

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
    except _TRANSIENT as exc:
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
        with working_on(job.name):
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


def module_worker_settings(
    settings: Settings, module: Module, metrics: BackboneMetrics | None = None
) -> dict[str, Any]:
    """arq's settings for the worker of one module: its queue, its jobs and crons."""
    queue = queue_name(module.name)
    return {
        "queue_name": queue,
        "functions": [_job(job, queue, metrics) for job in module.jobs],
        "cron_jobs": [_cron(job) for job in module.cron_jobs],
        "redis_settings": redis_settings(settings),
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        # On SIGTERM/SIGINT: take no new job, let running ones finish for this long, then cancel
        # them, which hands them back to the queue for the next worker.
        "job_completion_wait": settings.worker_shutdown_grace_s,
        "job_timeout": 300,
        "keep_result": 3600,
    }
