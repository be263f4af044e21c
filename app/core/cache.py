"""The response cache: serialised response bodies in Redis (through cashews), shared by every
instance of the service.

Reads never fail because of the cache: when Redis errs or is slower than `cache_timeout_s`, the
read is computed from Postgres, a warning is logged, `stats.backend_errors` grows, and the cache
is left alone for `cache_retry_after_s` (so an outage costs one warning per interval, not one per
request); then it is tried again, which is how it heals when Redis returns.

Stampede protection: concurrent misses of one key in one process share a single Redis read and,
if Redis has no copy, a single computation (single flight); so each key is read from Redis and
recomputed at most once at a time per instance.

In front of Redis sits a short-lived in-process copy (cachetools TTLCache, `cache_local_ttl_s`):
the hottest bodies are served without a network round trip. Invalidation drops the local copy
of the instance that runs it at once; other instances' copies expire within `cache_local_ttl_s`,
which is what it adds to the staleness bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache
from cashews import Cache

from app.core.config import Settings
from app.core.logging import get_logger

_log = get_logger("keystone.cache")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    backend_errors: int = 0


class CacheUnavailableError(Exception):
    """Invalidation could not reach Redis; the caller retries (an event is redelivered)."""


class ResponseCache:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.cache_enabled
        self.stats = CacheStats()
        self._timeout_s = settings.cache_timeout_s
        self._retry_after_s = settings.cache_retry_after_s
        self._skip_until = 0.0
        self._inflight: dict[str, asyncio.Future[bytes | None]] = {}
        self._local: TTLCache[str, bytes] | None = (
            TTLCache(settings.cache_local_max_entries, settings.cache_local_ttl_s)
            if settings.cache_local_ttl_s > 0
            else None
        )
        self._cache = Cache(name="keystone-responses")
        self._cache.setup(
            settings.require_redis_url(),
            suppress=False,
            socket_timeout=settings.cache_timeout_s,
            socket_connect_timeout=settings.cache_timeout_s,
            wait_for_connection_timeout=settings.cache_timeout_s,
            max_connections=64,
            client_name=f"{settings.app_name}-cache",
        )

    async def start(self) -> None:
        await self._cache.init()

    async def close(self) -> None:
        await self._cache.close()

    async def get_or_compute(
        self, key: str, ttl_s: int, compute: Callable[[], Awaitable[bytes | None]]
    ) -> bytes | None:
        """The cached body of `key`, else `compute()` (stored for `ttl_s` unless it is None)."""
        if not self.enabled:
            return await compute()
        local = self._local.get(key) if self._local is not None else None
        if local is not None:
            self.stats.hits += 1
            return local
        # One Redis read or computation per key at a time: when a hot local copy expires, the
        # requests arriving meanwhile wait for it instead of each asking Redis.
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            body, computed = await self._fetch(key, compute)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[key]
        future.set_result(body)
        if computed and body is not None:
            await self._write(key, body, ttl_s)
        return body

    async def _fetch(
        self, key: str, compute: Callable[[], Awaitable[bytes | None]]
    ) -> tuple[bytes | None, bool]:
        """Redis's copy, else a computed body (and True: it is to be stored)."""
        cached = await self._read(key)
        if cached is not None:
            self.stats.hits += 1
            self._keep_local(key, cached)
            return cached, False
        self.stats.misses += 1
        body = await compute()
        if body is not None:
            self._keep_local(key, body)
        return body, True

    def clear_local(self) -> None:
        """Evict this process's copies (tests start each case from an empty cache)."""
        if self._local is not None:
            self._local.clear()

    def _keep_local(self, key: str, body: bytes) -> None:
        if self._local is not None:
            self._local[key] = body

    def _drop_local(self, keys: tuple[str, ...], patterns: tuple[str, ...]) -> None:
        if self._local is None:
            return
        prefixes = tuple(pattern.rstrip("*") for pattern in patterns)
        for key in [*keys, *(k for k in list(self._local) if prefixes and k.startswith(prefixes))]:
            self._local.pop(key, None)

    async def invalidate(self, *keys: str, patterns: tuple[str, ...] = ()) -> None:
        """Drop entries now; raises `CacheUnavailableError` so the caller can retry later."""
        if not self.enabled:
            return
        self._drop_local(keys, patterns)
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                if keys:
                    await self._cache.delete_many(*keys)
                for pattern in patterns:
                    await self._cache.delete_match(pattern)
        except Exception as exc:
            self._failed("invalidate", exc)
            raise CacheUnavailableError(str(exc)) from exc

    async def _read(self, key: str) -> bytes | None:
        if time.monotonic() < self._skip_until:
            return None
        try:
            # No asyncio.timeout here (it costs more than the read): the client's socket and
            # pool timeouts are cache_timeout_s.
            value = await self._cache.get_raw(key)
        except Exception as exc:
            self._failed("read", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def _write(self, key: str, body: bytes, ttl_s: int) -> None:
        if time.monotonic() < self._skip_until:
            return
        try:
            await self._cache.set_raw(key, body, ex=ttl_s)
        except Exception as exc:
            self._failed("write", exc)

    def _failed(self, operation: str, exc: Exception) -> None:
        self.stats.backend_errors += 1
        self._skip_until = time.monotonic() + self._retry_after_s
        _log.warning(
            "cache unavailable; serving from the database",
            operation=operation,
            error=f"{type(exc).__name__}: {exc}"[:300],
            retry_after_s=self._retry_after_s,
        )
