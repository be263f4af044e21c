"""Access tokens: signed by the process hosting users, verified by every process
(app/core/security/keys.py, docs/adr/0011-asymmetric-access-tokens.md).

They are core settings, not users': every process verifies tokens and checks revocations, and
every process must see JWT_PRIVATE_KEY to refuse it where users is not hosted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from app.core.config.base import SettingsBase, split_csv
from app.core.security.ed25519 import check_signing_keys


def _parse_previous_keys(value: Any) -> Any:
    """`kid:public,kid:public` -> {kid: public}, each public key as JWK's base64url `x`."""
    if not isinstance(value, str):
        return value
    keys: dict[str, str] = {}
    for item in split_csv(value):
        kid, sep, public = item.partition(":")
        if not sep or not kid.strip() or not public.strip():
            raise ValueError("JWT_PREVIOUS_KEYS must be a comma list of kid:public-key pairs")
        keys[kid.strip()] = public.strip()
    return keys


class TokenSettings(SettingsBase):
    # The Ed25519 private key (PKCS#8 PEM) only the process hosting users holds; unset in
    # dev/test, a fixed development key signs (refused in staging/prod).
    # `python -m app.cli signing-key KID` makes one.
    jwt_private_key: SecretStr | None = None
    jwt_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    jwt_issuer: str = "keystone"
    jwt_audience: str = "keystone-api"
    # Keys that no longer sign but still verify, during a rotation: "kid:public,kid:public"
    # (public keys only, as `signing-key` prints them).
    jwt_previous_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Where users is served elsewhere: how soon a token under an unknown key id may make this
    # process fetch users' JWKS again.
    jwks_refetch_min_s: float = Field(default=10.0, ge=0, le=3_600)
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    # Each API process mirrors the token deny-list in memory, kept current through Redis
    # pub/sub (app/core/security/revocation.py); off, every request asks Redis. The mirror is
    # trusted only while a PING over its subscription came back within 2 x the heartbeat.
    revocation_mirror: bool = True
    revocation_heartbeat_s: float = Field(default=0.5, gt=0, le=10)

    @field_validator("jwt_private_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("jwt_previous_keys", mode="before")
    @classmethod
    def _previous_keys(cls, value: Any) -> Any:
        return _parse_previous_keys(value)

    @model_validator(mode="after")
    def _keys_load(self) -> TokenSettings:
        if self.jwt_key_id in self.jwt_previous_keys:
            raise ValueError("JWT_KEY_ID must not also be listed in JWT_PREVIOUS_KEYS")
        check_signing_keys(self.jwt_private_key, self.jwt_previous_keys)
        return self
