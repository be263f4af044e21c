"""The arq workers: `python -m app.cli worker` runs the jobs and crons of every module the process
hosts (WORKER_MODULES, default APP_MODULES), one arq worker per module on the module's own queue
(`keystone:<module>`), all sharing one runtime.

Only this package, `app.core.jobs` and `app.core.job_claims` (ADR 0018) know arq: `functions`
turns a module's jobs and crons into arq functions, `workers` runs them in the process
(`Workers`). The process also runs the outbox relay when it hosts every module, so events raised
by jobs (an order expiring) are delivered even when no API process is up. arq's own command
line (`arq app.worker.WorkerSettings`) runs one worker only: it serves a process that hosts a
single module.
"""

from __future__ import annotations

from typing import Any

from app.bootstrap import build_runtime
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.worker.functions import module_worker_settings
from app.worker.workers import run_workers

# `python -m app.cli worker` (app/cli/processes.py) imports run_workers from here.
__all__ = ["run_workers", "worker_settings"]


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
