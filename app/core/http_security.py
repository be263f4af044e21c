"""Edge protection as pure ASGI middleware: security headers, allowed hosts, HTTPS, body size.

Everything that can be computed once (header lists, host sets) is computed when the app is built;
per request each layer does a dict or set look-up and, at most, appends headers.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from fastapi import FastAPI
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.core.config import Settings
from app.core.errors import RESPONSE_HEADERS_STATE_KEY, problem
from app.core.security.services import ServiceCallers

# Probes and metric scrapes come from the platform straight to the container (plain HTTP,
# Host = the pod's IP): they are neither redirected nor host-checked nor rate limited. Nor are
# calls from other services to the internal endpoints (plain HTTP inside the cluster, Host =
# the Service's DNS name), once their credential is checked (app/core/security/services.py).
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})

# The API serves JSON only: nothing may be loaded, framed or run from its responses.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI as app/core/docs.py serves it: bundle, CSS and favicon from this origin, API calls
# to this origin, and one inline start-up script, admitted by its hash (computed from the page
# as it is sent, so a root_path or new parameters still work). No other origin is named.
# Inline styles stay allowed: Swagger UI sets style attributes as it renders; its SVG icons are
# data: URLs.
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self'{script_hashes}; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_csp(page: bytes) -> str:
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return DOCS_CSP.format(script_hashes=hashes)


def security_headers(settings: Settings, csp: str) -> dict[str, str]:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": csp,
    }
    if settings.behind_tls:
        headers["Strict-Transport-Security"] = (
            f"max-age={settings.hsts_max_age_s}; includeSubDomains"
        )
    return headers


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    """Adds the security headers to every response; the docs pages get a CSP of their own."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings, API_CSP)
        self._raw = _encoded(self.headers)
        self._raw_without_csp = [h for h in self._raw if h[0] != b"content-security-policy"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The 500 handler runs outside every middleware: it reads the headers from here.
        scope.setdefault("state", {})[RESPONSE_HEADERS_STATE_KEY] = self.headers
        if scope["path"] in DOCS_PATHS:
            await self.app(scope, receive, self._docs_sender(send))
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _docs_sender(self, send: Send) -> Send:
        """Holds the (small) docs page back until its inline scripts are hashed into the CSP."""
        start: Message = {}
        body = bytearray()

        async def send_docs(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            csp = (b"content-security-policy", docs_csp(bytes(body)).encode())
            start["headers"] = [*start.get("headers", []), *self._raw_without_csp, csp]
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        return send_docs


def _host_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            host: str = value.decode("latin-1").lower()
            if host.startswith("["):  # [IPv6]:port
                return host.partition("]")[0] + "]"
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


class TrustedHostMiddleware:
    """Answers 400 problem+json to a Host header not in TRUSTED_HOSTS ("*.example.com" allowed):
    a forged Host must not reach redirects, absolute URLs or caches keyed on it."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], callers: ServiceCallers) -> None:
        self.app = app
        self.callers = callers
        hosts = [host.lower() for host in allowed_hosts]
        self.exact = frozenset(host for host in hosts if not host.startswith("*."))
        self.suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))

    def allows(self, host: str) -> bool:
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PROBE_PATHS
            or self.allows(_host_of(scope))
            or self.callers.caller(scope)
        ):
            await self.app(scope, receive, send)
            return
        response = problem(Request(scope), 400, "Host header not allowed", code="invalid-host")
        await response(scope, receive, send)


class HTTPSRedirectMiddleware:
    """Sends plain-HTTP requests to the same URL over https with a 308 (method and body kept).

    The scheme is the one the client used: behind a proxy listed in TRUSTED_PROXIES it comes from
    X-Forwarded-Proto (ProxyHeadersMiddleware runs first); from anyone else it is ignored.
    """

    def __init__(self, app: ASGIApp, callers: ServiceCallers) -> None:
        self.app = app
        self.callers = callers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["scheme"] != "http"
            or scope["path"] in PROBE_PATHS
            or self.callers.caller(scope)
        ):
            await self.app(scope, receive, send)
            return
        url = URL(scope=scope)
        netloc = url.hostname if url.port in (80, 443, None) else url.netloc
        response = RedirectResponse(url.replace(scheme="https", netloc=netloc), status_code=308)
        await response(scope, receive, send)


class BodyTooLargeError(HTTPException):
    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_body_bytes} bytes")


class BodySizeMiddleware:
    """413 problem+json for a body over MAX_BODY_BYTES: at once when Content-Length says so,
    else (chunked) as soon as the bytes read pass the limit.

    FastAPI's own `max_body_size` is not used: when the declared length is too large it replaces
    whatever response the app sends with a plain-text 413, so no problem+json could get out.
    A too-large body met while reading raises an HTTPException from `receive`, which FastAPI
    re-raises and the problem handlers render.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_too_large(scope):
            error = BodyTooLargeError(self.max_body_bytes)
            await problem(Request(scope), 413, error.detail)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        await self.app(scope, counting_receive, send)

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) > self.max_body_bytes
        return False


def install_edge_protection(app: FastAPI, settings: Settings, callers: ServiceCallers) -> None:
    """Adds the layers outermost last: proxy headers, security headers, body size, allowed host,
    HTTPS. Call after the inner middleware (rate limit, CORS) and before RequestContext."""
    if settings.redirects_to_https:
        app.add_middleware(HTTPSRedirectMiddleware, callers=callers)
    if settings.trusted_hosts:
        app.add_middleware(
            TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts, callers=callers
        )
    app.add_middleware(BodySizeMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
