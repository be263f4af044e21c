"""The counter: a sliding window in one Lua script, one round trip per question (ADR 0016)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.config import Settings
from app.core.logging import get_logger
from app.core.ratelimit.decision import Decision

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
