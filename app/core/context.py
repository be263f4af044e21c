"""Per-request and per-event context, carried in contextvars so logs and events can read it."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# The W3C `traceparent` the request came with, passed on to the services it calls when this
# process records no trace of its own.
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)


def current_correlation_id() -> str | None:
    """The id that ties an event to what caused it: the event being handled, else the request."""
    return correlation_id_var.get() or request_id_var.get()
