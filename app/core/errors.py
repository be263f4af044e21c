"""Domain errors and their RFC 9457 problem+json rendering.

Modules raise subclasses of `DomainError` from their services; the handlers here turn them, HTTP
errors, validation errors and anything unexpected into `application/problem+json` carrying the
request id. A 500 never shows a stack trace: the traceback goes to the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.core.logging import get_logger, route_module

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Headers every response must carry (security headers), put in the scope by the middleware that
# owns them, for the 500 handler that runs outside every middleware.
RESPONSE_HEADERS_STATE_KEY = "response_headers"
_log = get_logger("keystone.errors")


class DomainError(Exception):
    """A business rule said no. Subclasses set the HTTP status and a stable problem type."""

    status: int = 400
    code: str = "bad-request"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class NotFoundError(DomainError):
    status = 404
    code = "not-found"


class ConflictError(DomainError):
    status = 409
    code = "conflict"


class UnprocessableError(DomainError):
    status = 422
    code = "unprocessable"


class UnauthorizedError(DomainError):
    status = 401
    code = "unauthorized"


class ForbiddenError(DomainError):
    status = 403
    code = "forbidden"


# Every 503 says when to come back: a client that honours it neither hammers nor gives up.
RETRY_AFTER_S = "2"


class ServiceUnavailableError(DomainError):
    status = 503
    code = "service-unavailable"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": RETRY_AFTER_S, **(headers or {})})


class TooManyRequestsError(DomainError):
    status = 429
    code = "too-many-requests"


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    title: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://keystone.dev/problems/{code or _default_code(status)}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    if errors is not None:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _default_code(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return problem(
        request, exc.status, exc.detail, code=exc.code, headers={**headers, **exc.headers}
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = exc.headers
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return problem(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers to. Starlette's 405 names only the methods of
    the first route whose path matched, one of several when each method has its own route."""
    path = request.scope["path"]
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "route_methods", None
    )
    if table is None:
        table = request.app.state.route_methods = [
            (compile_path(route.path)[0], route.methods)
            for route in iter_route_contexts(request.app.routes)
            if route.path is not None and route.methods
        ]
    return sorted(
        {method for pattern, methods in table if pattern.match(path) for method in methods}
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    fields = ", ".join(sorted({error["field"] for error in errors}))
    return problem(
        request, 422, f"Request validation failed: {fields}", code="validation-error", errors=errors
    )


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # This handler runs outside every middleware (Starlette's ServerErrorMiddleware): the
    # request id is no longer bound to the log context and no middleware adds headers, so
    # both are done here.
    state = request.scope.get("state", {})
    request_id = state.get("request_id")
    _log.exception(
        "unhandled error",
        path=request.url.path,
        module=route_module(request.scope.get("route")),
        error_type=type(exc).__name__,
        request_id=request_id,
        user_id=state.get("user_id"),
    )
    headers = dict(state.get(RESPONSE_HEADERS_STATE_KEY, {}))
    if request_id:
        headers["X-Request-ID"] = request_id
    detail = "An unexpected error occurred. Quote the request id to support."
    return problem(request, 500, detail, headers=headers)


# What a lost or restarting database looks like from here: connect refused or reset, a
# connection that died mid-query, the pool waiting in vain, a connect timeout.
_UNAVAILABLE = (ConnectionError, TimeoutError, PoolTimeoutError, OperationalError)


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and not (
        exc.connection_invalidated or isinstance(exc, OperationalError)
    ):
        return await _on_unexpected_error(request, exc)
    _log.warning(
        "dependency unavailable",
        path=request.url.path,
        module=route_module(request.scope.get("route")),
        error=repr(exc)[:500],
    )
    return problem(
        request,
        503,
        "The database is unavailable for a moment; try again shortly.",
        code="database-unavailable",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def install_error_handlers(app: FastAPI) -> None:
    for unavailable in (*_UNAVAILABLE, DBAPIError):
        app.add_exception_handler(unavailable, _on_unavailable)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
