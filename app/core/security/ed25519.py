"""Ed25519 keys as settings and JWKs hold them: PEM private keys, base64url public keys.

Nothing here imports the application, so settings can check the keys they are given.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr

# Every development process derives the same key from this public seed, so tokens from one
# verify in another; staging and prod refuse to start without a key of their own.
_DEV_SEED = hashlib.sha256(b"keystone-dev-only-signing-key; refused in staging and prod").digest()


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def dev_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_DEV_SEED)


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_text(key: Ed25519PublicKey) -> str:
    """The public key as JWK's `x`: its 32 raw bytes, base64url without padding."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def load_private_key(pem: str) -> Ed25519PrivateKey:
    """A PKCS#8 PEM Ed25519 private key; `\\n` written out (one-line env values) is accepted."""
    try:
        key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM private key (python -m app.cli signing-key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key (python -m app.cli signing-key)")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValueError("not an Ed25519 public key (32 bytes, base64url)") from None


def jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": public_text(key),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def check_signing_keys(private_pem: SecretStr | None, previous: dict[str, str]) -> None:
    """Raises ValueError naming the setting whose key cannot be read."""
    if private_pem is not None:
        try:
            load_private_key(private_pem.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"JWT_PRIVATE_KEY is {exc}") from None
    for kid, public in previous.items():
        try:
            load_public_key(public)
        except ValueError as exc:
            raise ValueError(f"JWT_PREVIOUS_KEYS: {kid!r} is {exc}") from None
