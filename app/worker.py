"""The arq workers: `python -m app.cli worker` runs the jobs and crons of every module the process
hosts (WORKER_MODULES, default APP_MODULES), one arq worker per module on the module's own queue
(`keystone:<module>`), all sharing one runtime.

Only this file and `app.core.jobs` know arq. The process also runs the outbox relay when it hosts
every module, so events raised by jobs (an order expiring) are delivered even when no API process
is up. arq's own command line (`arq app.worker.WorkerSettings`) runs one worker only: it serves a
process that hosts a single module.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from typing import Any

import structlog
from arq import Retry, cron, func
from arq.worker import Worker
from opentelemetry.trace import SpanKind

from app.bootstrap import build_runtime
from app.core import tracing
from app.core.backbone_metrics import BackboneMetrics
from app.core.config import Settings, get_settings
from app.core.context import correlation_id_var
from app.core.jobs import (
    CronJob,
    Job,
    RetryLater,
    main_through_redis_outages,
    queue_name,
    redis_settings,
)
from app.core.logging import configure_logging, get_logger
from app.core.metrics_server import MetricsServer
from app.core.module import Module
from app.core.peers import PeerUnavailableError
from app.core.telemetry import Telemetry, tracer_provider
from app.runtime import Runtime

_log = get_logger("keystone.worker")
WORKER_DRAIN_S = 20
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


def _runnable(runtime: Runtime) -> list[Module]:
    # arq refuses a worker with nothing to run: a module without jobs needs none.
    return [module for module in runtime.modules if module.jobs or module.cron_jobs]


class Workers:
    """One arq worker per hosted module, sharing one runtime: started together, stopped
    together by one signal, each draining its own running jobs within WORKER_SHUTDOWN_GRACE_S."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime | None = None,
        *,
        burst: bool = False,
        poll_delay_s: float | None = None,
    ) -> None:
        self.runtime = runtime or build_runtime(settings, hosting=settings.worker_hosted_modules)
        runnable = _runnable(self.runtime)
        self.telemetry = Telemetry(
            settings,
            cache=None,
            rate_limiter=None,
            event_stores={module.name: module.uow for module in self.runtime.modules},
            jobs=self.runtime.core.jobs(),
            queues=[queue_name(module.name) for module in runnable],
            # What its modules read at a scrape: the payment circuit is the worker's own.
            scraped=[metric for module in self.runtime.modules for metric in module.metrics],
            traces=False,
        )
        metrics = self.telemetry.backbone
        if metrics is not None:
            self.runtime.relay.lag_observers.append(metrics.delivered)
        self._metrics_server = (
            MetricsServer(
                self.telemetry,
                settings.metrics_token,
                settings.worker_metrics_host,
                settings.worker_metrics_port,
            )
            if metrics is not None
            else None
        )
        poll = {} if poll_delay_s is None else {"poll_delay": poll_delay_s}
        self._workers = [
            Worker(
                **{**module_worker_settings(settings, module, metrics), **poll},
                burst=burst,
                handle_signals=False,
            )
            for module in runnable
        ]

    @property
    def metrics_port(self) -> int | None:
        """Where GET /metrics is served (once running), None with metrics off."""
        return None if self._metrics_server is None else self._metrics_server.port

    @property
    def queues(self) -> list[str]:
        return [worker.queue_name for worker in self._workers]

    @property
    def jobs_complete(self) -> int:
        return sum(worker.jobs_complete for worker in self._workers)

    @property
    def jobs_failed(self) -> int:
        return sum(worker.jobs_failed for worker in self._workers)

    @property
    def jobs_retried(self) -> int:
        return sum(worker.jobs_retried for worker in self._workers)

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """What a signal does: no new jobs; running ones finish within the grace period."""
        for worker in self._workers:
            worker.handle_sig_wait_for_completion(signum)

    async def run(self, *, signals: Sequence[signal.Signals] = ()) -> None:
        """Until every worker has stopped (a signal, `stop`, or an empty queue in burst mode)."""
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.add_signal_handler(signum, self.stop, signum)
        await self.runtime.start(checks_tokens=False)
        _log.info("workers started", queues=self.queues)
        try:
            if self._metrics_server is not None:
                await self._metrics_server.start()
            tasks = [asyncio.create_task(main_through_redis_outages(w)) for w in self._workers]
            for worker, task in zip(self._workers, tasks, strict=True):
                worker.main_task = task
            if tasks:  # until all have stopped, or one failed (the others are then stopped)
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and (error := task.exception()) is not None:
                        raise error
        finally:
            if self._metrics_server is not None:
                await self._metrics_server.stop()
            for worker in self._workers:
                await _close(worker)
            await self.runtime.stop()
            await self.telemetry.shutdown()
            for signum in signals:
                loop.remove_signal_handler(signum)


async def _close(worker: Worker) -> None:
    if worker.main_task is not None and not worker.main_task.done():
        worker.main_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker.main_task
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()


def run_workers(settings: Settings, *, burst: bool = False) -> None:
    """`python -m app.cli worker`: until SIGTERM/SIGINT (or, in burst mode, empty queues)."""
    asyncio.run(_run(settings, burst))


async def _run(settings: Settings, burst: bool) -> None:
    provider = tracer_provider(settings)
    if provider is not None:
        tracing.instrument_libraries()  # before the runtime's engine and clients exist
    tracing.use(provider)
    try:
        await Workers(settings, burst=burst).run(signals=(signal.SIGTERM, signal.SIGINT))
    finally:
        if provider is not None:
            # Sends the spans still batched (in a thread: it waits on the collector).
            await asyncio.to_thread(provider.shutdown)


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq's command line (`arq app.worker.WorkerSettings`): one worker, for a process hosting
    one module."""
    hosted = settings.worker_hosted_modules
    if len(hosted) != 1:
        raise RuntimeError(
            f"`arq app.worker.WorkerSettings` runs one queue, and this process hosts {hosted}: "
            "run `python -m app.cli worker`, or set WORKER_MODULES to one module"
        )
    runtime = build_runtime(settings, hosting=hosted)

    async def startup(_ctx: dict[str, Any]) -> None:
        await runtime.start(checks_tokens=False)

    async def shutdown(_ctx: dict[str, Any]) -> None:
        await runtime.stop()

    return {
        **module_worker_settings(settings, runtime.module(hosted[0])),
        "on_startup": startup,
        "on_shutdown": shutdown,
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
