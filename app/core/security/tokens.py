"""JWT access tokens (PyJWT): pinned algorithm, required claims, a key id for rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import jwt

from app.core.config import Settings
from app.core.errors import UnauthorizedError
from app.core.security.rbac import Principal, Role

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "jti"]


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.jwt_secret.get_secret_value()
        self._kid = settings.jwt_key_id
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_s)

    def issue_access_token(self, user_id: UUID, roles: frozenset[Role]) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid4().hex,
            "typ": "access",
            "roles": sorted(roles),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})

    def verify_access_token(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            if claims.get("typ") != "access":
                raise UnauthorizedError("Not an access token")
            return Principal(
                user_id=UUID(claims["sub"]),
                roles=frozenset(Role(role) for role in claims.get("roles", [])),
            )
        except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
            raise UnauthorizedError("Invalid or expired access token") from exc
