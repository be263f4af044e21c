"""JWT access tokens (PyJWT): pinned algorithm (EdDSA), required claims, key ids for rotation.

The users module signs with its current private key (`JWT_KEY_ID` / `JWT_PRIVATE_KEY`); every
process verifies with public keys only, chosen by the token's `kid` header: its own where it
hosts users, else those users publishes (app/core/security/keys.py). A token whose `kid` is
unknown is refused before any signature check.

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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.core.config import Settings
from app.core.errors import UnauthorizedError
from app.core.security.keys import ALGORITHM, SigningKeys, VerificationKeys
from app.core.security.rbac import Principal, Role

REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "jti", "sid"]
VERIFIED_TOKENS = 10_000


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: who it speaks for, and what identifies it for revocation."""

    principal: Principal
    token_id: str
    session_id: UUID
    expires_at: datetime


class TokenIssuer:
    """Signs access tokens: the users module's alone (the one holder of a private key)."""

    def __init__(self, settings: Settings, keys: SigningKeys) -> None:
        self._keys = keys
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_s)

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
            claims, self._keys.private, algorithm=ALGORITHM, headers={"kid": self._keys.kid}
        )


class TokenService:
    """Verifies access tokens with public keys, wherever they come from."""

    def __init__(self, settings: Settings, keys: VerificationKeys) -> None:
        self._keys = keys
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._verified: LRUCache[str, AccessToken] = LRUCache(VERIFIED_TOKENS)

    async def verify_access_token(self, token: str) -> AccessToken:
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verified[token] = self._verify(token, await self._key_of(token))
        elif verified.expires_at <= datetime.now(UTC):
            del self._verified[token]
            raise UnauthorizedError("Invalid or expired access token")
        return verified

    async def _key_of(self, token: str) -> Ed25519PublicKey:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError("Invalid or expired access token") from exc
        key = await self._keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnauthorizedError("Unknown signing key")
        return key

    def _verify(self, token: str, key: Ed25519PublicKey) -> AccessToken:
        try:
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
