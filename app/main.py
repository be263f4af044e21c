"""The API process: `create_app(settings)` mounts the modules named by APP_MODULES.

`uvicorn app.main:app` builds the app from the environment on first access; tests call
`create_app` with their own settings.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.bootstrap import build_runtime
from app.core import tracing
from app.core.config import Environment, Settings, get_settings
from app.core.docs import install_docs
from app.core.errors import install_error_handlers
from app.core.flags import FeatureFlags, WritesPausedGuard
from app.core.health import health_router
from app.core.http_security import install_edge_protection
from app.core.logging import configure_logging
from app.core.metrics import core_metrics
from app.core.middleware import RequestContextMiddleware
from app.core.observability import init_sentry
from app.core.openapi import document_problems
from app.core.ratelimit.middleware import RateLimitMiddleware
from app.core.ratelimit.route_check import check_route_limits
from app.core.ratelimit.sliding_window import RateLimiter
from app.core.security.services import InternalRoutesGuard, ServiceCallers
from app.core.telemetry import Telemetry, metrics_router
from app.runtime import Runtime

DESCRIPTION = """
Keystone is a shop-like backend built as a modular monolith: **users**, **catalog** and
**orders** run in one process, each owning its own Postgres schema and talking to the others only
through contracts and integration events.

Errors are `application/problem+json` (RFC 9457) with a `request_id`. Lists are
`{"items": [...], "next_cursor": ...}`: pass `next_cursor` back as `cursor` for the next page.
Use **Authorize** with an email and password to call protected endpoints.
"""


# FastAPI (0.16x) tries routes one at a time, a few microseconds each: the catalog's reads, most
# of a shop's traffic, are tried first and the probes last. No two modules share a path, so the
# order decides nothing else.
ROUTE_ORDER = ("catalog", "users", "orders")
RATE_LIMIT_HEADERS = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    init_sentry(settings)
    if settings.tracing_enabled:
        tracing.instrument_libraries()  # before the engine and clients exist
    runtime = build_runtime(settings)
    rate_limiter = RateLimiter(runtime.core.redis(), settings)
    flags = FeatureFlags(settings)
    telemetry = _telemetry(settings, runtime, rate_limiter, flags)
    app = FastAPI(
        telemetry=telemetry.fastapi_config(),
        title="Keystone",
        version=settings.release,
        description=DESCRIPTION,
        debug=settings.debug,
        lifespan=_lifespan(runtime, flags, telemetry),
        # One documentation UI, the one the CSP is written and tested for (Swagger UI), served
        # from the app's own assets by install_docs below.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    _attach(app, runtime)
    app.state.rate_limiter = rate_limiter
    app.state.flags = flags
    app.state.telemetry = telemetry
    install_error_handlers(app)
    _include_routers(app, settings, runtime, telemetry)
    document_problems(app, rate_limited=settings.rate_limit_enabled)
    _add_middleware(app, settings, flags, telemetry)
    return app


def _telemetry(
    settings: Settings, runtime: Runtime, rate_limiter: RateLimiter, flags: FeatureFlags
) -> Telemetry:
    telemetry = Telemetry(
        settings,
        cache=runtime.core.cache(),
        rate_limiter=rate_limiter,
        event_stores={module.name: module.uow for module in runtime.modules},
        scraped=[
            *core_metrics(runtime.readiness, {m.name: m.uow.database for m in runtime.modules}),
            *(metric for module in runtime.modules for metric in module.metrics),
            *flags.metrics(),
        ],
    )
    if telemetry.backbone is not None:
        runtime.relay.lag_observers.append(telemetry.backbone.delivered)
    return telemetry


def _lifespan(
    runtime: Runtime, flags: FeatureFlags, telemetry: Telemetry
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            runtime.readiness.shutting_down = True
            gc.unfreeze()
            await runtime.stop()
            flags.shutdown()
            await telemetry.shutdown()

    return lifespan


def _include_routers(
    app: FastAPI, settings: Settings, runtime: Runtime, telemetry: Telemetry
) -> None:
    for module in sorted(runtime.modules, key=lambda module: ROUTE_ORDER.index(module.name)):
        app.include_router(module.router)
    app.include_router(health_router(runtime.readiness))
    install_docs(app, swagger_ui_parameters={"persistAuthorization": True})
    if settings.metrics_enabled:
        app.include_router(metrics_router(telemetry, settings.metrics_token))
    # What other processes call (the facades over HTTP): tried last, and not in the public
    # OpenAPI document (each module's internal one is committed under docs/contracts/).
    for module in runtime.modules:
        if module.internal_router is not None:
            app.include_router(module.internal_router, include_in_schema=False)


def _add_middleware(
    app: FastAPI, settings: Settings, flags: FeatureFlags, telemetry: Telemetry
) -> None:
    """After the routes: the rate limits check the routes they name."""
    callers = ServiceCallers(settings.service_callers)
    # Middleware runs outermost-last-added: request context, edge protection, CORS, rate limit,
    # the maintenance switch, the guard of the internal endpoints.
    app.add_middleware(InternalRoutesGuard, callers=callers)
    app.add_middleware(WritesPausedGuard, flags=flags)
    if settings.rate_limit_enabled:
        check_route_limits(settings, app)
        app.add_middleware(
            RateLimitMiddleware, limiter=app.state.rate_limiter, settings=settings, callers=callers
        )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", *RATE_LIMIT_HEADERS],
        )
    install_edge_protection(app, settings, callers)
    app.add_middleware(
        RequestContextMiddleware, tracing=settings.tracing_enabled, http_metrics=telemetry.http
    )


def _freeze_startup_objects() -> None:
    """Keeps what start-up built (the app, its models, routes, pools: ~180,000 objects) out of
    the garbage collector's full passes. Scanning them took ~100 ms, several times a second
    under load: the p99 of a cached read was 110 ms with it, 20 ms without (docs/performance.md,
    item 13). They live as long as the process; shutdown unfreezes them. No collection first:
    freezing is instant, a full collection here would stall the loop of a process already
    serving (tests run several apps in one), and start-up leaves little cyclic garbage."""
    gc.freeze()


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
