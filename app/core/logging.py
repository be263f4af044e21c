"""Structured logging: JSON lines outside dev, a readable console in dev.

Every line carries the request id (and the user id and correlation id when known) through
structlog's contextvars, and with tracing on the trace and span ids of the span it is written
in; the stdlib loggers of uvicorn, arq and SQLAlchemy go through the same renderer so one
process writes one format.

Every line also names the `module` that wrote it (users, catalog, orders, or core for shared
infrastructure and libraries): a line's own `module` field first (the access line names the
route's module), then its logger (`keystone.<module>` or below it), then the module whose job or
event handler is running (`working_on`), else core. Log shipping makes it a Loki label
(docs/observability.md), so its values stay this short list.

`line_logger` serves lines written on every request (the access line): the same processors,
stream and format, without logging's record, handler and formatter layers in between, which
cost about a tenth of a cached read.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import FilteringBoundLogger, Processor

from app.core.config import ALL_MODULES, Settings

CORE = "core"
# The module whose job or event handler this task is running (see `working_on`).
_working_for: ContextVar[str | None] = ContextVar("working_for", default=None)


class _Output:
    """Where lines go: the root handler's stream (tests swap it), under logging's own lock,
    and the processors that render a line for it."""

    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(sys.stdout)
    processors: list[Processor] = []
    level = logging.INFO
    line_loggers: dict[str, FilteringBoundLogger] = {}


class _StreamLine:
    """A structlog output logger writing rendered lines to `_Output.handler`'s stream."""

    def __init__(self, name: str) -> None:
        self.name = name  # for structlog's add_logger_name

    def msg(self, line: str) -> None:
        handler = _Output.handler
        with handler.lock:  # type: ignore[union-attr]  # StreamHandler always has its lock
            handler.stream.write(line + "\n")
            handler.stream.flush()

    debug = info = warning = error = critical = msg


def configure_logging(settings: Settings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Always in the chain (a line outside any span gets nothing): loggers cache their chain
        # on first use, so one made before tracing was switched on must still name spans.
        _trace_ids,
        _module,
    ]
    renderer: Any
    if settings.logs_as_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        # Plain tracebacks: rich ones with locals take long enough to stall the event loop.
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    _Output.handler = handler
    _Output.processors = [*shared, renderer]
    _Output.level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    _Output.line_loggers = {}
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn's access log is replaced by our own access line, which knows the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def _trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The trace and span ids of the span running as the line is written, to join logs and
    traces (a line written outside any span keeps what the request bound, if anything)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = f"{context.trace_id:032x}"
        event["span_id"] = f"{context.span_id:016x}"
    return event


def _module(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if "module" not in event:
        event["module"] = _logger_module(event.get("logger")) or _working_for.get() or CORE
    return event


@cache
def _logger_module(logger: str | None) -> str | None:
    """ "orders" for the loggers keystone.orders and keystone.orders.*; None for any other."""
    parts = (logger or "").split(".")
    if len(parts) >= 2 and parts[0] == "keystone" and parts[1] in ALL_MODULES:
        return parts[1]
    return None


@cache
def code_module(python_module: str) -> str:
    """The Keystone module a piece of code belongs to: "orders" for app.modules.orders.router,
    core for anything else."""
    parts = python_module.split(".")
    if len(parts) >= 3 and parts[:2] == ["app", "modules"] and parts[2] in ALL_MODULES:
        return parts[2]
    return CORE


def route_module(route: object) -> str:
    """The module whose endpoint a matched route (the ASGI scope's "route") calls."""
    endpoint = getattr(route, "endpoint", None)
    return code_module(getattr(endpoint, "__module__", None) or "")


@contextmanager
def working_on(name: str) -> Iterator[None]:
    """While the job or event handler `name` ("orders.take_payment") runs: lines written by
    core or a library (SQLAlchemy, arq, httpx...) name its module, whose work it is."""
    module = name.partition(".")[0]
    token = _working_for.set(module if module in ALL_MODULES else CORE)
    try:
        yield
    finally:
        _working_for.reset(token)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def line_logger(name: str) -> FilteringBoundLogger:
    """A logger for a line written on every request, as `configure_logging` last set them up:
    ask for it where the line is written, not once at import."""
    logger = _Output.line_loggers.get(name)
    if logger is None:
        logger = _Output.line_loggers[name] = structlog.wrap_logger(
            _StreamLine(name),
            processors=_Output.processors,
            wrapper_class=structlog.make_filtering_bound_logger(_Output.level),
        )
    return logger
