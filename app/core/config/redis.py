"""Redis: the job queue, token revocations, the rate limiter and the response cache."""

from __future__ import annotations

from pydantic import Field

from app.core.config.base import SettingsBase


class RedisSettings(SettingsBase):
    redis_url: str | None = None
    redis_timeout_s: float = Field(default=2.0, gt=0)

    # The Redis response cache (app/core/cache.py; what is cached and for how long is each
    # module's setting). Event-driven invalidation keeps staleness to the relay's delay.
    cache_enabled: bool = True
    cache_timeout_s: float = Field(default=0.25, gt=0, le=10)
    cache_retry_after_s: float = Field(default=1.0, ge=0, le=300)
    # A per-process copy in front of Redis; it adds at most this much to the staleness bound
    # on the other instances (0 turns it off).
    cache_local_ttl_s: float = Field(default=1.0, ge=0, le=60)
    cache_local_max_entries: int = Field(default=10_000, ge=1, le=1_000_000)

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError(
                "REDIS_URL is not set. Run `make run` to start an embedded Redis, or export "
                "REDIS_URL=redis://127.0.0.1:6379/0"
            )
        return self.redis_url
