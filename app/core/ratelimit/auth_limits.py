"""The tight limits on endpoints that guess at credentials: per client IP on the route and per
account the request body names; they fail closed when Redis cannot answer."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import Request
from limits import RateLimitItem

from app.core.errors import ServiceUnavailableError
from app.core.ratelimit.decision import client_ip, record, too_many
from app.core.ratelimit.sliding_window import RateLimiter


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
        raise too_many(decision)
