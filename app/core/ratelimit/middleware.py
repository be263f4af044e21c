"""The limit every request meets: per client IP, the default or its route's own."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItem, parse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import problem
from app.core.ratelimit.decision import DECISION_STATE_KEY, Decision, client_ip, record, too_many
from app.core.ratelimit.leases import Leases
from app.core.ratelimit.sliding_window import RateLimiter
from app.core.security.services import ServiceCallers

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True)
class _RouteLimit:
    method: str
    pattern: re.Pattern[str]
    bucket: str
    item: RateLimitItem


class RateLimitMiddleware:
    """Per client IP on every route; writes the RateLimit-* headers of the tightest limit met."""

    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, settings: Settings, callers: ServiceCallers
    ) -> None:
        self.app = app
        self.limiter = limiter
        # Other services calling the internal endpoints are not public clients: not limited.
        self.callers = callers
        self.leases = Leases(limiter)
        self.routes = [
            _RouteLimit(method, compile_path(path)[0], route, parse(limit))
            for route, limit in settings.rate_limit_routes.items()
            for method, _, path in [route.partition(" ")]
        ]

    def _limit_for(self, method: str, path: str) -> tuple[str, RateLimitItem]:
        for route in self.routes:
            if route.method == method and route.pattern.match(path):
                return route.bucket, route.item
        return "default", self.limiter.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or self.callers.caller(scope):
            await self.app(scope, receive, send)
            return
        bucket, item = self._limit_for(scope["method"], scope["path"])
        decision = await self.leases.hit(item, "ip", client_ip(scope), bucket)
        if decision is not None:
            record(scope, decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                tightest: Decision | None = scope["state"].get(DECISION_STATE_KEY)
                if tightest is not None:
                    message["headers"] = [*message.get("headers", []), *tightest.headers()]
            await send(message)

        if decision is not None and not decision.allowed:
            error = too_many(decision)
            response = problem(
                Request(scope), 429, error.detail, code=error.code, headers=error.headers
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
