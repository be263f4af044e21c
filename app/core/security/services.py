"""Service credentials: who may call the internal endpoints (`/internal/<module>/...`).

Each calling service has a credential of its own (SERVICE_TOKEN, 256 random bits), sent in
`X-Service-Token`. A provider keeps only the SHA-256 of the credentials it accepts, by caller
name (SERVICE_CALLERS), so one caller's credential is rotated (two digests for a while) or
revoked (its digests removed) without touching the others, and a provider's configuration holds
nothing a caller could be impersonated with. See docs/adr/0007-service-credentials.md.

An internal path asked without a credential answers exactly as an unknown path does (404): the
endpoints are not revealed to the public. A credential that matches no caller is a 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import problem
from app.core.logging import get_logger

INTERNAL_PREFIX = "/internal/"
SERVICE_TOKEN_HEADER = "X-Service-Token"  # noqa: S105 - a header name
_HEADER = SERVICE_TOKEN_HEADER.lower().encode("ascii")
CALLER_STATE_KEY = "service_caller"
_log = get_logger("keystone.services")


def new_service_token() -> str:
    return secrets.token_urlsafe(32)


def credential_digest(token: str | bytes) -> str:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


def _presented(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == _HEADER:
            return bytes(value)
    return None


def is_internal(scope: Scope) -> bool:
    return bool(scope["path"].startswith(INTERNAL_PREFIX))


class ServiceCallers:
    """The callers this process accepts on its internal endpoints: (name, SHA-256) pairs."""

    def __init__(self, callers: Sequence[tuple[str, str]]) -> None:
        self._digests = [(name, digest.encode("ascii")) for name, digest in callers]

    def identify(self, token: bytes) -> str | None:
        digest = credential_digest(token).encode("ascii")
        found = None
        for name, expected in self._digests:  # every entry compared: no early exit to time
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    def caller(self, scope: Scope) -> str | None:
        """The authenticated service behind a request to an internal path, else None (a
        public path, no credential or a wrong one). Worked out once per request."""
        if scope["type"] != "http" or not is_internal(scope):
            return None
        state = scope.setdefault("state", {})
        if CALLER_STATE_KEY not in state:
            token = _presented(scope)
            state[CALLER_STATE_KEY] = self.identify(token) if token else None
        caller: str | None = state[CALLER_STATE_KEY]
        return caller


class InternalRoutesGuard:
    """In front of the router: an internal path without a credential is 404 (as any unknown
    path, whatever the method), with a wrong one 401; a known caller is named in the logs."""

    def __init__(self, app: ASGIApp, callers: ServiceCallers) -> None:
        self.app = app
        self.callers = callers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_internal(scope):
            await self.app(scope, receive, send)
            return
        if _presented(scope) is None:
            await problem(Request(scope), 404, "Not Found")(scope, receive, send)
            return
        caller = self.callers.caller(scope)
        if caller is None:
            _log.warning("internal call refused: unknown service credential", path=scope["path"])
            response = problem(
                Request(scope),
                401,
                "The service credential is not valid",
                code="invalid-service-credential",
            )
            await response(scope, receive, send)
            return
        with structlog.contextvars.bound_contextvars(service_caller=caller):
            await self.app(scope, receive, send)
