"""Calls to a module served by another process (a peer), over its internal HTTP endpoints.

The composition root gives a module the HTTP client of a peer's facade instead of the peer's
service when the peer is not hosted here; those clients call through `Peer`:

- one connection pool per process (httpx), shared by every peer, with connect and read timeouts;
- retries with exponential backoff and jitter (stamina) for idempotent calls only, on transport
  errors, timeouts, 408, 429 and 5xx;
- a circuit breaker per peer (purgatory): after PEER_BREAKER_THRESHOLD transient failures in a
  row calls fail at once for PEER_BREAKER_RESET_S, then one probe decides;
- the request's X-Request-ID (or the job's or event's correlation id) and W3C `traceparent`
  passed on, and this process's service credential (app/core/security/services.py).

Whatever goes wrong ends as `PeerUnavailableError`: a 503 problem with Retry-After for an HTTP
caller (it is a `DomainError`), a later retry for a job (app/worker/functions.py).
"""

from __future__ import annotations

import math
import time
from typing import Any, TypeVar

import httpx
import stamina
from opentelemetry.propagate import inject
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import OpenedState
from pydantic import TypeAdapter, ValidationError

from app.core.config import Settings
from app.core.context import current_correlation_id, traceparent_var
from app.core.errors import RETRY_AFTER_S, ServiceUnavailableError
from app.core.logging import get_logger
from app.core.security.services import SERVICE_TOKEN_HEADER

T = TypeVar("T")
_TRANSIENT_STATUSES = frozenset({408, 429})
_NOTHING = TypeAdapter(None)
_log = get_logger("keystone.peers")


class PeerUnavailableError(ServiceUnavailableError):
    """A module served by another process could not answer: unreachable, too slow, failing, its
    circuit open, or refusing the call. The call may succeed later; never a reason for a 500."""

    code = "peer-unavailable"

    def __init__(self, peer: str, reason: str, retry_after_s: int = int(RETRY_AFTER_S)) -> None:
        super().__init__(
            f"The {peer} service is unavailable for a moment; try again shortly.",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.peer = peer
        self.reason = reason
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.peer} unavailable: {self.reason}"


class _TransientAnswerError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"answered {status}")


def _transient(exc: Exception) -> bool:
    return isinstance(exc, _TransientAnswerError | httpx.TransportError)


class PeerConnections:
    """The process's connection pool to its peers and their circuit breakers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http: httpx.AsyncClient | None = None
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.peer_breaker_threshold,
            default_ttl=settings.peer_breaker_reset_s,
        )
        self.breakers.add_listener(self._on_breaker_event)
        self.circuits: dict[str, str] = {}

    def peer(self, name: str) -> Peer:
        url = self.settings.peer_urls.get(name)
        if url is None:
            raise RuntimeError(
                f"{name} is not hosted here (APP_MODULES / WORKER_MODULES) and {name.upper()}_URL "
                f"is not set: host {name} in this process or name the service that does"
            )
        return Peer(name, url, self)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            settings = self.settings
            token = settings.service_token.get_secret_value() if settings.service_token else ""
            self._http = httpx.AsyncClient(
                headers={SERVICE_TOKEN_HEADER: token},
                timeout=httpx.Timeout(
                    settings.peer_read_timeout_s,
                    connect=settings.peer_connect_timeout_s,
                    pool=settings.peer_connect_timeout_s,
                ),
                limits=httpx.Limits(
                    max_connections=settings.peer_pool_size,
                    max_keepalive_connections=settings.peer_pool_size,
                ),
                # Peers are named by configuration only; a redirect would be a misconfiguration.
                follow_redirects=False,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _on_breaker_event(self, name: str, kind: str, event: Event) -> None:
        if kind == "state_changed" and isinstance(event, ContextChanged):
            self.circuits[name] = event.state
            log = _log.error if event.state == "opened" else _log.warning
            log("peer circuit changed state", peer=name, state=event.state)


class Peer:
    """One peer: `get`/`put` are idempotent (retried), `post` is not unless told so."""

    def __init__(self, name: str, base_url: str, connections: PeerConnections) -> None:
        self.name = name
        self.base_url = base_url
        self._connections = connections

    async def get(self, path: str, *, into: TypeAdapter[T], params: Any = None) -> T:
        return await self.call("GET", path, into=into, params=params, idempotent=True)

    async def put(self, path: str, *, body: Any) -> None:
        await self.call("PUT", path, into=_NOTHING, body=body, idempotent=True)

    async def post(self, path: str, *, into: TypeAdapter[T], body: Any, idempotent: bool) -> T:
        return await self.call("POST", path, into=into, body=body, idempotent=idempotent)

    async def call(
        self,
        method: str,
        path: str,
        *,
        into: TypeAdapter[T],
        params: Any = None,
        body: Any = None,
        idempotent: bool,
    ) -> T:
        """The answer read `into` its type (None for a 204), or `PeerUnavailableError`."""
        settings = self._connections.settings
        request = self._connections.http.build_request(
            method, self.base_url + path, params=params, json=body, headers=_context_headers()
        )
        try:
            async for attempt in stamina.retry_context(
                on=_transient,
                attempts=settings.peer_retry_attempts if idempotent else 1,
                timeout=None,
                wait_initial=settings.peer_retry_wait_initial_s,
                wait_max=settings.peer_retry_wait_max_s,
                wait_jitter=settings.peer_retry_wait_initial_s,
            ):
                with attempt:
                    response = await self._attempt(request)
        except OpenedState as exc:
            retry_after = max(
                1, math.ceil(exc.opened_at + settings.peer_breaker_reset_s - time.time())
            )
            raise PeerUnavailableError(self.name, "circuit open", retry_after) from exc
        except (_TransientAnswerError, httpx.TransportError) as exc:
            _log.warning("peer unavailable", peer=self.name, path=path, error=repr(exc))
            raise PeerUnavailableError(self.name, repr(exc)) from exc
        return self._decoded(response, path, into)

    async def _attempt(self, request: httpx.Request) -> httpx.Response:
        breaker = await self._connections.breakers.get_breaker(self.name)
        async with breaker:
            response = await self._connections.http.send(request)
            if response.status_code >= 500 or response.status_code in _TRANSIENT_STATUSES:
                raise _TransientAnswerError(response.status_code)
        return response

    def _decoded(self, response: httpx.Response, path: str, into: TypeAdapter[T]) -> T:
        if response.is_success:
            try:
                return into.validate_json(response.content or b"null")
            except ValidationError as exc:
                reason = f"an answer out of contract: {exc.errors(include_input=False)}"
        else:
            reason = f"refused the call with {response.status_code}"
        # A refusal is no outage: a wrong credential or URL, or a contract out of step. The
        # caller still sees the peer as unavailable; the operator sees why, here.
        _log.error(
            "peer " + reason,
            peer=self.name,
            path=path,
            status=response.status_code,
            body=response.text[:500],
        )
        raise PeerUnavailableError(self.name, reason)


def _context_headers() -> dict[str, str]:
    headers: dict[str, str] = {}
    correlation_id = current_correlation_id()
    if correlation_id:
        headers["X-Request-ID"] = correlation_id
    inject(headers)  # the current span, when this process records traces
    if "traceparent" not in headers and (incoming := traceparent_var.get()):
        headers["traceparent"] = incoming
    return headers
