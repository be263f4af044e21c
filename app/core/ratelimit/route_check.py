"""The start-up check that every route `RATE_LIMIT_ROUTES` names is served."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import Settings


def check_route_limits(settings: Settings, app: FastAPI) -> None:
    """A RATE_LIMIT_ROUTES entry that names no route would silently protect nothing."""
    if not settings.rate_limit_routes:
        return
    served = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    unknown = sorted(set(settings.rate_limit_routes) - served)
    if unknown:
        raise RuntimeError(f"RATE_LIMIT_ROUTES names routes this app does not serve: {unknown}")
