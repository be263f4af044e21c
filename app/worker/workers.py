"""The worker process: one arq worker per hosted module, sharing one runtime."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Any

from arq.worker import Worker

from app.bootstrap import build_runtime
from app.core import tracing
from app.core.config import Settings
from app.core.job_claims import PromptWorker
from app.core.jobs import main_through_redis_outages, queue_name
from app.core.logging import get_logger
from app.core.metrics_server import MetricsServer
from app.core.module import Module
from app.core.telemetry import Telemetry, tracer_provider
from app.runtime import Runtime
from app.worker.functions import module_worker_settings

_log = get_logger("keystone.worker")


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
            PromptWorker(
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
        try:
            if self._metrics_server is not None:
                await self._metrics_server.start()
            tasks = [asyncio.create_task(main_through_redis_outages(w)) for w in self._workers]
            for worker, task in zip(self._workers, tasks, strict=True):
                worker.main_task = task
            await self._until_polling(tasks)
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

    async def _until_polling(self, tasks: list[asyncio.Task[None]]) -> None:
        """Logs "workers started" once it is true (a supervisor or test reading the log acts on
        it): the relay running, /metrics bound, every worker taking jobs. Not logged if a
        worker failed first (`run` raises its error); a burst worker that found its queue empty
        and ended has polled, so it does not hold the line back."""
        polled = asyncio.gather(*(worker.polled.wait() for worker in self._workers))
        while not polled.done():
            running = [task for task in tasks if not task.done()]
            if len(running) < len(tasks) and any(_failed(task) for task in tasks):
                polled.cancel()
                await asyncio.gather(polled, return_exceptions=True)
                return
            either: list[asyncio.Future[Any]] = [polled, *running]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        _log.info("workers started", queues=self.queues, metrics_port=self.metrics_port)


def _failed(task: asyncio.Task[None]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


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
