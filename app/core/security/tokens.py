"""JWT access tokens (PyJWT): pinned algorithm, required claims, key ids for rotation.

Tokens are signed with the current key (`JWT_KEY_ID` / `JWT_SECRET`); the key that verifies a
token is chosen by its `kid` header among the current and the previous keys
(`JWT_PREVIOUS_KEYS`), so tokens signed before a rotation stay valid until they expire. A token
whose `kid` is unknown is refused before any signature check.

A client sends the same access token with every request until it expires, and the token's
text fixes everything verification decides but its expiry: verified tokens are kept by their
text (`VERIFIED_TOKENS` of them, least recently used out first), and a kept token is checked
against the clock only. That is 75 µs of a 600 µs `GET /users/me` (docs/performance.md,
item 14). Revocation is not part of this: it is checked on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import jwt
from cachetools import LRUCache

from app.core.config import Settings
from app.core.errors import UnauthorizedError
from app.core.security.rbac import Principal, Role

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "jti", "sid"]
VERIFIED_TOKENS = 10_000


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: who it speaks for, and what identifies it for revocation."""

    principal: Principal
    token_id: str
    session_id: UUID
    expires_at: datetime


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._kid = settings.jwt_key_id
        self._keys = {
            kid: key.get_secret_value() for kid, key in settings.jwt_previous_keys.items()
        }
        self._keys[self._kid] = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_s)
        self._verified: LRUCache[str, AccessToken] = LRUCache(VERIFIED_TOKENS)

    def issue_access_token(self, user_id: UUID, roles: frozenset[Role], session_id: UUID) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid4().hex,
            "sid": str(session_id),
            "typ": "access",
            "roles": sorted(roles),
        }
        return jwt.encode(
            claims, self._keys[self._kid], algorithm=ALGORITHM, headers={"kid": self._kid}
        )

    def verify_access_token(self, token: str) -> AccessToken:
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verified[token] = self._verify(token)
        elif verified.expires_at <= datetime.now(UTC):
            del self._verified[token]
            raise UnauthorizedError("Invalid or expired access token")
        return verified

    def _verify(self, token: str) -> AccessToken:
        try:
            key = self._keys.get(str(jwt.get_unverified_header(token).get("kid")))
            if key is None:
                raise UnauthorizedError("Unknown signing key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            if claims.get("typ") != "access":
                raise UnauthorizedError("Not an access token")
            principal = Principal(
                user_id=UUID(claims["sub"]),
                roles=frozenset(Role(role) for role in claims.get("roles", [])),
            )
            return AccessToken(
                principal=principal,
                token_id=str(claims["jti"]),
                session_id=UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
            raise UnauthorizedError("Invalid or expired access token") from exc
