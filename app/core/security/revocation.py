"""Revoked access tokens and sessions, in Redis, checked on every authenticated request.

An access token is refused when its own id (`jti`, after logout) or its session (`sid`: the
refresh-token family, after logout, reuse detection, a password change or reset, a role change
or the account being disabled) is listed. Each entry lives only as long as a token it could
match, so the lists stay small. The refresh tokens' durable state is in Postgres; Redis only
has to outlive the access tokens (minutes). When Redis cannot answer, the request is refused
with 503: a revocation that cannot be checked is not assumed absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.errors import ServiceUnavailableError
from app.core.logging import get_logger
from app.core.security.tokens import AccessToken

_log = get_logger("keystone.auth")
_TOKEN = "auth:revoked-token:"  # noqa: S105 - a Redis key prefix
_SESSION = "auth:revoked-session:"


class TokenRevocations:
    def __init__(self, redis: Redis, access_ttl_s: int) -> None:
        self._redis = redis
        self._session_ttl_s = access_ttl_s + 60  # outlives any access token of the session

    async def revoke_token(self, token: AccessToken) -> None:
        remaining = int((token.expires_at - datetime.now(UTC)).total_seconds()) + 1
        if remaining > 0:
            await self._redis.set(_TOKEN + token.token_id, 1, ex=remaining)

    async def revoke_sessions(self, session_ids: Iterable[UUID]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(f"{_SESSION}{session_id}", 1, ex=self._session_ttl_s)
            await pipe.execute()

    async def is_revoked(self, token: AccessToken) -> bool:
        try:
            hits = await self._redis.mget(_TOKEN + token.token_id, f"{_SESSION}{token.session_id}")
        except RedisError as exc:
            _log.error("token revocation check failed", error=str(exc))
            raise ServiceUnavailableError("Cannot verify the token right now; retry") from exc
        return any(hit is not None for hit in hits)
