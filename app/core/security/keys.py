"""The keys access tokens are signed and verified with (Ed25519, JWS `EdDSA`).

Only the process hosting the users module holds a private key (`JWT_PRIVATE_KEY`) and signs;
it publishes the public halves of its current and previous keys as a JWK Set at
`GET /api/v1/auth/jwks.json`, and serves the same set to the other services at
`GET /internal/users/jwks.json`. A process that does not host users holds no private key: it
verifies with the public keys it fetches from the internal one with its service credential
(`RemoteKeys`), kept in memory and fetched again only when a token names a key id it does not
know, at most once per `JWKS_REFETCH_MIN_S`, so a flood of made-up key ids costs the users
service one request per interval at most. The internal path, unlike the public one, is not
redirected to HTTPS by users (app/core/http_security.py), so the plain-HTTP call inside the
cluster is answered.

Rotation (docs/adr/0011-asymmetric-access-tokens.md): the new key signs as soon as it is
configured; the old one's public half stays listed in `JWT_PREVIOUS_KEYS` until every token it
signed has expired (`ACCESS_TOKEN_TTL_S`), then is removed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import TypeAdapter

from app.core.config import Settings
from app.core.logging import get_logger
from app.core.peers import Peer, PeerUnavailableError
from app.core.security.ed25519 import dev_signing_key, jwk, load_private_key, load_public_key

ALGORITHM = "EdDSA"
JWKS_PATH = "/internal/users/jwks.json"
_JWKS = TypeAdapter(dict[str, Any])
_log = get_logger("keystone.auth")


class VerificationKeys(Protocol):
    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The key named `kid`, or None when no such key is known (the token is refused)."""
        ...


class SigningKeys:
    """The users module's keys: the current one signs, it and the previous ones verify."""

    def __init__(
        self, kid: str, private: Ed25519PrivateKey, previous: dict[str, Ed25519PublicKey]
    ) -> None:
        self.kid = kid
        self.private = private
        self._public = {**previous, kid: private.public_key()}

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The current key first, then the previous ones."""
        ordered = [self.kid, *(kid for kid in self._public if kid != self.kid)]
        return {"keys": [jwk(kid, self._public[kid]) for kid in ordered]}


def signing_keys(settings: Settings) -> SigningKeys:
    """The keys of the process hosting users, from its settings (checked there already)."""
    pem = settings.jwt_private_key
    private = load_private_key(pem.get_secret_value()) if pem else dev_signing_key()
    previous = {kid: load_public_key(x) for kid, x in settings.jwt_previous_keys.items()}
    return SigningKeys(settings.jwt_key_id, private, previous)


class RemoteKeys:
    """The users service's public keys, fetched from its internal JWKS and kept in memory."""

    def __init__(self, users: Peer, refetch_min_s: float) -> None:
        self._users = users
        self._refetch_min_s = refetch_min_s
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -float("inf")
        self._fetching = asyncio.Lock()

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._fetching:  # concurrent requests with a new kid share one fetch
            if kid not in self._keys and self._may_fetch():
                await self._fetch()
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return time.monotonic() - self._fetched_at >= self._refetch_min_s

    async def _fetch(self) -> None:
        """Raises PeerUnavailableError (a 503) when the users service cannot answer: a token
        under a key not seen yet can be neither accepted nor refused."""
        document = await self._users.get(JWKS_PATH, into=_JWKS)
        self._fetched_at = time.monotonic()
        try:
            entries = jwt.PyJWKSet.from_dict(document).keys
        except (jwt.PyJWKError, jwt.PyJWKSetError) as exc:
            _log.error("the users service's JWKS is out of contract", error=str(exc))
            raise PeerUnavailableError("users", f"JWKS out of contract: {exc}") from exc
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in entries:
            if entry.key_id and isinstance(entry.key, Ed25519PublicKey):
                keys[entry.key_id] = entry.key
        self._keys = keys
        _log.info("signing keys fetched", kids=sorted(keys))
