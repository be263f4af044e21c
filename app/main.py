"""The API process: `create_app(settings)` mounts the modules named by APP_MODULES.

`uvicorn app.main:app` builds the app from the environment on first access; tests call
`create_app` with their own settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.bootstrap import Runtime, build_runtime
from app.core.config import Environment, Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.health import health_router
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.observability import init_sentry

DESCRIPTION = """
Keystone is a shop-like backend built as a modular monolith: **users**, **catalog** and
**orders** run in one process, each owning its own Postgres schema and talking to the others only
through contracts and integration events.

Errors are `application/problem+json` (RFC 9457) with a `request_id`. Lists are
`{"items": [...], "next_cursor": ...}`: pass `next_cursor` back as `cursor` for the next page.
Use **Authorize** with an email and password to call protected endpoints.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    init_sentry(settings)
    runtime = build_runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            runtime.readiness.shutting_down = True
            await runtime.stop()

    app = FastAPI(
        title="Keystone",
        version=settings.release,
        description=DESCRIPTION,
        debug=settings.debug,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        swagger_ui_parameters={"persistAuthorization": True},
    )
    _attach(app, runtime)
    install_error_handlers(app)
    app.include_router(health_router(runtime.readiness))
    for module in runtime.modules:
        app.include_router(module.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed"],
        )
    app.add_middleware(RequestContextMiddleware)
    return app


def _attach(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
    app.state.core = runtime.core
    app.state.containers = {module.name: module.container for module in runtime.modules}


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` asks for `app`: build it then, from the environment, not at import.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)


__all__ = ["Environment", "create_app"]
