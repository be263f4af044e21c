"""Revoked access tokens and sessions: kept in Redis, mirrored in each API process.

An access token is refused when its own id (`jti`, after logout) or its session (`sid`: the
refresh-token family, after logout, reuse detection, a password change or reset, a role change
or the account being disabled) is listed. Each entry lives only as long as a token it could
match, so the lists stay small. The refresh tokens' durable state is in Postgres; Redis only
has to outlive the access tokens (minutes).

Redis holds the lists. So that the check every authenticated request makes costs no round trip,
each API process mirrors them in memory (`RevocationMirror`, a task of the runtime):

- It subscribes to `REVOCATIONS_CHANNEL` first, then loads every listed id (SCAN of both
  prefixes, with each key's remaining TTL), then applies what the channel delivers. Revoking
  writes the key and publishes it in one MULTI, so every revocation is either in Redis before
  the subscription (found by the load) or published after it (delivered).
- An entry expires locally when its Redis key does (the TTL travels in the message; PTTL at
  load), so the mirror holds only what is live.
- It PINGs over the subscription every `REVOCATION_HEARTBEAT_S`. Redis answers in order on the
  connection, so a PONG proves that every revocation made before that PING has been applied.

Consistency window: a revocation made on another instance is seen here once pub/sub has
delivered it, typically within a millisecond. The mirror answers only while a PONG has come back
for a PING sent in the last 2 x `REVOCATION_HEARTBEAT_S`, so anything revoked before that is
known for certain. When it cannot say so (not subscribed yet, connection lost or silently dead,
Redis down or frozen), every request asks Redis as before the mirror existed (MGET), and when
Redis cannot answer the request is refused with 503: a revocation that cannot be checked is not
assumed absent. The mirror then re-subscribes and reloads from scratch, so a revocation made
while this process was cut off is never lost.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cachetools import TLRUCache
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app.core.errors import ServiceUnavailableError
from app.core.logging import get_logger
from app.core.security.tokens import AccessToken

_log = get_logger("keystone.auth")
_TOKEN = "auth:revoked-token:"  # noqa: S105 - a Redis key prefix
_SESSION = "auth:revoked-session:"
REVOCATIONS_CHANNEL = "auth:revocations"
_SCAN_BATCH = 1_000


class MirrorStaleError(Exception):
    """Redis has not answered the subscription's PING for longer than it may take."""


def _expires_at(_key: str, ttl_s: float, now: float) -> float:
    return now + ttl_s


class RevocationMirror:
    """The revoked ids in memory, kept current through Redis pub/sub while `run` runs."""

    def __init__(self, redis: Redis, heartbeat_s: float, timeout_s: float) -> None:
        self._redis = redis
        self._heartbeat_s = heartbeat_s
        self._trusted_s = 2 * heartbeat_s
        self._give_up_s = self._trusted_s + timeout_s
        self._timeout_s = timeout_s
        # key -> remaining TTL (s) when it arrived; never evicted early (no size bound).
        self._revoked: TLRUCache[str, float] = TLRUCache(math.inf, _expires_at)
        # When the last PING that came back was sent (time.monotonic).
        self._confirmed_at = -math.inf
        self._stopping = False

    def is_current(self) -> bool:
        return time.monotonic() - self._confirmed_at < self._trusted_s

    def holds(self, key: str) -> bool:
        return key in self._revoked

    def add(self, key: str, ttl_s: float) -> None:
        self._revoked[key] = ttl_s

    def stop(self) -> None:
        """`run` returns at its next step even if a cancellation is lost inside redis-py (its
        zero-timeout readiness check on a pooled connection can swallow one; redis-py#4063)."""
        self._stopping = True

    async def run(self) -> None:
        """Follow the revocations until stopped; after any failure, start again from an empty
        mirror (requests check Redis meanwhile)."""
        while not self._stopping:
            try:
                await self._follow()
            except (RedisError, OSError, MirrorStaleError) as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:  # a bug must not leave the mirror trusted
                _log.exception("revocation mirror failed")
                error = type(exc).__name__
            else:
                return  # stopped
            self._lost(error)
            await asyncio.sleep(self._heartbeat_s)

    def _lost(self, error: str) -> None:
        if self._confirmed_at > -math.inf:
            _log.warning("revocation mirror lost; checking Redis per request", error=error)
        self._confirmed_at = -math.inf
        self._revoked.clear()

    async def _follow(self) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(REVOCATIONS_CHANNEL)
            await self._until_subscribed(pubsub)
            self._revoked.clear()
            await self._load()
            _log.info("revocation mirror following", entries=len(self._revoked))
            while not self._stopping:
                sent_at = time.monotonic()
                await pubsub.ping(repr(sent_at))
                await self._apply_until(pubsub, sent_at + self._heartbeat_s)
                if time.monotonic() - self._confirmed_at > self._give_up_s:
                    raise MirrorStaleError("no answer to the subscription's PING")

    async def _until_subscribed(self, pubsub: PubSub) -> None:
        """Redis has registered the subscription: nothing published from now on is missed."""
        deadline = time.monotonic() + self._timeout_s
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "subscribe":
                return
        raise MirrorStaleError("no subscription confirmation")

    async def _load(self) -> None:
        for prefix in (_TOKEN, _SESSION):
            keys: list[bytes] = []
            async for key in self._redis.scan_iter(match=f"{prefix}*", count=_SCAN_BATCH):
                keys.append(key)
                if len(keys) == _SCAN_BATCH:
                    await self._load_ttls(keys)
                    keys = []
            await self._load_ttls(keys)

    async def _load_ttls(self, keys: list[bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            ttls_ms: list[int] = await pipe.execute()
        for key, ttl_ms in zip(keys, ttls_ms, strict=True):
            if ttl_ms != -2:  # -2: expired meanwhile; -1: set without a TTL, kept for good
                self._revoked[key.decode()] = math.inf if ttl_ms == -1 else ttl_ms / 1000

    async def _apply_until(self, pubsub: PubSub, deadline: float) -> None:
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(timeout=left)
            if message is not None:
                self._apply(message)
        self._revoked.expire()

    def _apply(self, message: dict[str, Any]) -> None:
        if message["type"] == "pong":
            self._confirmed_at = max(self._confirmed_at, float(message["data"]))
        elif message["type"] == "message":
            ttl_s, key = message["data"].decode().split(" ", 1)
            self.add(key, float(ttl_s))


class TokenRevocations:
    def __init__(self, redis: Redis, mirror: RevocationMirror, access_ttl_s: int) -> None:
        self._redis = redis
        self._mirror = mirror
        self._session_ttl_s = access_ttl_s + 60  # outlives any access token of the session

    async def revoke_token(self, token: AccessToken) -> None:
        remaining = int((token.expires_at - datetime.now(UTC)).total_seconds()) + 1
        if remaining > 0:
            await self._revoke({_TOKEN + token.token_id: remaining})

    async def revoke_sessions(self, session_ids: Iterable[UUID]) -> None:
        await self._revoke({f"{_SESSION}{sid}": self._session_ttl_s for sid in session_ids})

    async def _revoke(self, ttls_s: dict[str, int]) -> None:
        """Listed and announced in one MULTI: a mirror loading meanwhile finds it either way.
        This process's mirror takes it at once, so its next request cannot beat the message."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, ttl_s in ttls_s.items():
                pipe.set(key, 1, ex=ttl_s)
                pipe.publish(REVOCATIONS_CHANNEL, f"{ttl_s} {key}")
            await pipe.execute()
        for key, ttl_s in ttls_s.items():
            self._mirror.add(key, ttl_s)

    async def is_revoked(self, token: AccessToken) -> bool:
        token_key, session_key = _TOKEN + token.token_id, f"{_SESSION}{token.session_id}"
        if self._mirror.is_current():
            return self._mirror.holds(token_key) or self._mirror.holds(session_key)
        try:
            hits = await self._redis.mget(token_key, session_key)
        except RedisError as exc:
            _log.error("token revocation check failed", error=str(exc))
            raise ServiceUnavailableError("Cannot verify the token right now; retry") from exc
        return any(hit is not None for hit in hits)
