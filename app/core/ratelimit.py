"""Rate limiting backed by Redis, so a limit holds across every instance of the API.

Limits are parsed by the `limits` library ("300/minute"); the counting is a sliding-window counter
in one Lua script (`_SLIDING_WINDOW_HIT`) that counts and returns what the headers need in a
single round trip. The library's own strategy needs two (hit, then window stats), which the
benchmark showed halving the throughput of a cached read. Two layers use it:

- `RateLimitMiddleware`: every request, per client IP, `RATE_LIMIT_DEFAULT` or the route's entry
  in `RATE_LIMIT_ROUTES`. When Redis cannot answer it fails open: the request goes through, the
  failure is counted (`RateLimiter.storage_failures`) and logged when it starts and ends.
  A client far from its limit is not asked about on every request: after each answer from Redis
  the process may let through a small share of what remains on its own (`Lease`), and counts
  those hits into Redis with its next question. See `Lease` for the bound this puts on the count.
- `auth_rate_limit(account_field)`: a dependency for endpoints that guess at credentials (login,
  register, password reset): per client IP on that route (`RATE_LIMIT_AUTH_IP`) and per account
  named in the body (`RATE_LIMIT_AUTH_ACCOUNT`), so a guesser spread over many IPs is still held.
  When Redis cannot answer these fail closed (503) unless `RATE_LIMIT_AUTH_FAIL_CLOSED=false`:
  an attacker able to knock Redis over must not get unlimited password guesses.

Every response that a limit was checked for carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds) of the tightest limit it met; a 429 adds `Retry-After`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI, Request
from limits import RateLimitItem, parse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import ServiceUnavailableError, TooManyRequestsError, problem
from app.core.logging import get_logger
from app.core.security.services import ServiceCallers

DECISION_STATE_KEY = "rate_limit"
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# After a storage failure, skip Redis for this long: a hung Redis must not add its timeout to
# every request.
STORAGE_RETRY_AFTER_S = 1.0
_log = get_logger("keystone.ratelimit")
KEY_PREFIX = "keystone:ratelimit"

# KEYS: this window's counter, the previous window's. ARGV: limit, window (s), seconds elapsed in
# this window, hits this process already let through on a lease (counted unconditionally). The
# previous window's count weighs in proportionally to how much of it still overlaps the sliding
# window; the hit asked about is counted only when it is allowed.
# Returns {allowed (0/1), remaining}.
_SLIDING_WINDOW_HIT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local served = tonumber(ARGV[4])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local weighted = previous * (window - elapsed) / window + current + served
if weighted + 1 <= limit then
  served = served + 1
end
if served > 0 and redis.call('INCRBY', KEYS[1], served) == served then
  redis.call('EXPIRE', KEYS[1], window * 2)
end
if weighted + 1 > limit then
  return {0, math.max(0, math.floor(limit - weighted))}
end
return {1, math.max(0, math.floor(limit - weighted - 1))}
"""
# A process lets through on its own at most 1/LEASE_SHARE of what Redis said remains (twice that
# while it asks again), at most LEASE_MAX_HITS hits, for at most LEASE_MAX_S (or a tenth of the
# window, if shorter). See `Lease`.
LEASE_SHARE = 16
LEASE_MAX_HITS = 64
LEASE_MAX_S = 1.0
# Past this many clients with a lease, expired leases are dropped (their unreported hits, at
# most 2 * LEASE_MAX_HITS each, with them).
LEASE_TABLE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after_s).encode()),
        ]


class RateLimiter:
    """Hits limits on Redis; answers None instead of raising when Redis cannot answer."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        # The API's own Redis client (its pool and timeouts), not a second set of connections.
        self._hit = redis.register_script(_SLIDING_WINDOW_HIT)
        self.enabled = settings.rate_limit_enabled
        self.default = parse(settings.rate_limit_default)
        self.auth_ip = parse(settings.rate_limit_auth_ip)
        self.auth_account = parse(settings.rate_limit_auth_account)
        self.auth_fail_closed = settings.rate_limit_auth_fail_closed
        self.storage_failures = 0
        self._storage_down_until = 0.0

    async def hit(self, item: RateLimitItem, *key: str, served: int = 0) -> Decision | None:
        """Counts one hit on `key` if the limit allows it, plus `served` hits already let
        through on a lease."""
        if time.monotonic() < self._storage_down_until:
            self.storage_failures += 1
            return None
        window = item.get_expiry()
        now = time.time()
        index = int(now // window)
        base = f"{KEY_PREFIX}:{item.key_for(*key)}"
        try:
            allowed, remaining = await self._hit(
                keys=[f"{base}:{index}", f"{base}:{index - 1}"],
                args=[item.amount, window, now - index * window, served],
            )
        except (RedisError, OSError) as exc:
            self._storage_failed(exc)
            return None
        if self._storage_down_until:
            self._storage_down_until = 0.0
            _log.info("rate limit storage is back")
        # When the current window rolls over: the count then starts to decay.
        reset_after_s = max(1, math.ceil((index + 1) * window - now))
        return Decision(bool(allowed), item.amount, int(remaining), reset_after_s)

    def _storage_failed(self, exc: Exception) -> None:
        self.storage_failures += 1
        if not self._storage_down_until:
            _log.warning(
                "rate limit storage unavailable; default limits fail open, auth limits "
                + ("fail closed" if self.auth_fail_closed else "fail open"),
                error=repr(exc),
            )
        self._storage_down_until = time.monotonic() + STORAGE_RETRY_AFTER_S


@dataclass(slots=True)
class Lease:
    """What one process may decide alone for one client, from Redis's last answer.

    While it lasts, up to `budget` requests are allowed without asking Redis; the next question
    carries them, so Redis's count catches up. While that question is in flight, up to `budget`
    more are allowed on credit, carried by the question after; requests beyond the credit wait
    for the answer (else every request arriving meanwhile would ask Redis too). So a process
    lets through at most 2/LEASE_SHARE of what remained beyond what Redis has counted, and
    nothing once the client is within LEASE_SHARE hits of its limit: near the limit every
    request is asked about, as without leases.
    """

    decision: Decision
    budget: int
    ends_at: float
    served: int = 0  # let through, not reported yet
    reported: int = 0  # reported by a question still in flight
    renewal: asyncio.Future[None] | None = None  # that question, while in flight

    @classmethod
    def after(cls, decision: Decision, window_s: int, served: int = 0) -> Lease:
        budget = min(LEASE_MAX_HITS, decision.remaining // LEASE_SHARE) if decision.allowed else 0
        return cls(decision, budget, time.monotonic() + cls.duration(window_s), served)

    @staticmethod
    def duration(window_s: int) -> float:
        return min(LEASE_MAX_S, window_s / 10)

    def take(self) -> Decision | None:
        """This request's decision if the lease covers it, else None (ask Redis)."""
        if self.served >= self.budget or time.monotonic() >= self.ends_at:
            return None
        self.served += 1
        granted = self.decision
        remaining = max(0, granted.remaining - self.reported - self.served)
        return Decision(True, granted.limit, remaining, granted.reset_after_s)

    def hand_back(self, window_s: int) -> int:
        """The hits to report with a question to Redis; the lease gives credit until the answer
        renews it."""
        served, self.served = self.served, 0
        self.reported += served
        self.ends_at = time.monotonic() + self.duration(window_s)
        return served


class Leases:
    """The leases of this process, by limit and client."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._leases: dict[str, Lease] = {}

    async def hit(self, item: RateLimitItem, *key: str) -> Decision | None:
        name = item.key_for(*key)
        while True:
            lease = self._leases.get(name)
            if lease is not None and (decision := lease.take()) is not None:
                return decision
            if lease is None or lease.renewal is None:
                return await self._renew(item, key, name, lease)
            # Credit spent while another request asks Redis: wait for its answer rather than
            # each asking too (on a loaded Redis that storm made every answer slower).
            await asyncio.shield(lease.renewal)

    async def _renew(
        self, item: RateLimitItem, key: tuple[str, ...], name: str, lease: Lease | None
    ) -> Decision | None:
        window_s = item.get_expiry()
        served = 0
        if lease is not None:
            served = lease.hand_back(window_s)
            lease.renewal = asyncio.get_running_loop().create_future()
        try:
            decision = await self._limiter.hit(item, *key, served=served)
            if decision is not None:
                # The hits let through on credit meanwhile go with the next question.
                current = self._leases.get(name)
                carried = current.served if current is not None else 0
                self._leases[name] = Lease.after(decision, window_s, served=carried)
                self._evict_expired()
            return decision
        finally:
            if lease is not None and lease.renewal is not None:
                lease.renewal.set_result(None)
                lease.renewal = None

    def _evict_expired(self) -> None:
        if len(self._leases) <= LEASE_TABLE_SIZE:
            return
        now = time.monotonic()
        live = {name: lease for name, lease in self._leases.items() if lease.ends_at > now}
        # Still too many (a crowd of clients at once): start over rather than sweep per request.
        self._leases = live if len(live) <= LEASE_TABLE_SIZE // 2 else {}


def client_ip(scope: Scope) -> str:
    """The peer address, already replaced by X-Forwarded-For's client when the peer is a
    trusted proxy (uvicorn's ProxyHeadersMiddleware, installed from TRUSTED_PROXIES)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def record(scope: Scope, decision: Decision) -> None:
    """Keep the tightest decision of this request for the response headers."""
    state = scope.setdefault("state", {})
    current: Decision | None = state.get(DECISION_STATE_KEY)
    if current is None or (not decision.allowed, -decision.remaining) > (
        not current.allowed,
        -current.remaining,
    ):
        state[DECISION_STATE_KEY] = decision


def _too_many(decision: Decision) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"Too many requests; retry in {decision.reset_after_s} s",
        headers={"Retry-After": str(decision.reset_after_s)},
    )


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
            error = _too_many(decision)
            response = problem(
                Request(scope), 429, error.detail, code=error.code, headers=error.headers
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


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


def _account_key(account: str) -> str:
    # Hashed: Redis keys should not hold email addresses. Case-folded: "A@x" is "a@x" here.
    return hashlib.sha256(account.strip().casefold().encode()).hexdigest()


async def _account_in_body(request: Request, field: str) -> str | None:
    """The account the body names. FastAPI has already read and cached the body, so this is a
    re-parse, not a second read; a malformed body names nobody (the route answers 422)."""
    content_type = request.headers.get("content-type", "")
    value: object = None
    try:
        if content_type.startswith("application/json"):
            data = await request.json()
            value = data.get(field) if isinstance(data, dict) else None
        elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/")):
            value = (await request.form()).get(field)
    except ValueError:
        return None
    return value if isinstance(value, str) and value.strip() else None


def auth_rate_limit(account_field: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency holding an endpoint that guesses at credentials to the tight limits: per
    client IP on this route and per account named by `account_field` in the (JSON or form) body.

        @router.post("/auth/password-reset", dependencies=[Depends(auth_rate_limit("email"))])
    """

    async def check(request: Request) -> None:
        limiter = cast(RateLimiter, request.app.state.rate_limiter)
        if not limiter.enabled:
            return
        route = getattr(request.scope.get("route"), "path", request.url.path)
        keys = [(limiter.auth_ip, ("auth-ip", client_ip(request.scope), route))]
        account = await _account_in_body(request, account_field)
        if account is not None:
            keys.append((limiter.auth_account, ("auth-account", _account_key(account), route)))
        for item, key in keys:
            await enforce(request, item, *key)

    return check


async def enforce(request: Request, item: RateLimitItem, *key: str) -> None:
    """Count one hit of `key` against `item`: a 429 past it, a 503 when Redis cannot answer
    (unless `RATE_LIMIT_AUTH_FAIL_CLOSED=false`). For limits a route keeps on its own callers,
    e.g. per account: `await enforce(request, parse("3/hour"), "what", str(user_id))`."""
    limiter = cast(RateLimiter, request.app.state.rate_limiter)
    if not limiter.enabled:
        return
    decision = await limiter.hit(item, *key)
    if decision is None:
        if limiter.auth_fail_closed:
            raise ServiceUnavailableError(
                "Sign-in protection is unavailable; try again shortly",
                headers={"Retry-After": "5"},
            )
        return
    record(request.scope, decision)
    if not decision.allowed:
        raise _too_many(decision)
