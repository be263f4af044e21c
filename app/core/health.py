"""Liveness and readiness.

`/healthz` touches nothing: the process answers, so it is alive. `/readyz` checks what a request
needs (Postgres, Redis, every mounted module's schema at its migration head) and answers 503 with
the failing checks.

Readiness flips at the signal: on SIGTERM/SIGINT `python -m app.cli serve` closes its listener at
once, so from then on a probe's connection is refused (it fails) while the requests in flight
finish within API_SHUTDOWN_GRACE_S (tests/faults/test_api_shutdown.py). For servers that keep
answering during shutdown, /readyz also reports 503 from the moment the lifespan shutdown starts.
A refused probe still takes the platform a moment to act on, so on Kubernetes give the pod a
preStop sleep longer than the endpoint propagation delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.logging import get_logger

_log = get_logger("keystone.health")
CHECK_TIMEOUT_S = 2.0


class NotReadyError(Exception):
    """A check's failure whose message is safe to show to anyone who can reach /readyz."""


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    probe: Callable[[], Awaitable[None]]


class Readiness:
    def __init__(self, checks: list[ReadinessCheck]) -> None:
        self.checks = checks
        self.shutting_down = False

    async def run(self) -> dict[str, str]:
        results = await asyncio.gather(*(self._run_one(check) for check in self.checks))
        return dict(zip((check.name for check in self.checks), results, strict=True))

    async def _run_one(self, check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check.probe(), CHECK_TIMEOUT_S)
        except NotReadyError as exc:
            _log.warning("readiness check failed", check=check.name, error=str(exc))
            return f"failed: {exc}"
        except Exception as exc:
            # Driver messages name hosts and users: they go to the log, not to the probe.
            _log.warning("readiness check failed", check=check.name, error=repr(exc))
            return "failed"
        return "ok"


def health_router(readiness: Readiness) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: Postgres, Redis and migrations are usable",
        responses={503: {"description": "A check failed or the process is shutting down"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness.run()
        if readiness.shutting_down:
            checks["shutdown"] = "failed: shutting down"
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router
