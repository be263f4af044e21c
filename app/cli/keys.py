"""New secrets for the operator to store: a service credential, an access-token signing key.
Printed once as environment lines; nothing is kept."""

from __future__ import annotations

import click


@click.command("service-credential")
@click.argument("caller")
def service_credential(caller: str) -> None:
    """Make a credential for the service CALLER.

    CALLER is the calling service's name, e.g. orders. Prints its SERVICE_TOKEN and the digest
    every service it calls adds to SERVICE_CALLERS."""
    from app.core.security.services import credential_digest, new_service_token

    token = new_service_token()
    print(f"# the {caller} service sets (a secret):\nSERVICE_TOKEN={token}")
    print(f"# every service it calls adds to SERVICE_CALLERS:\n{caller}:{credential_digest(token)}")


@click.command("signing-key")
@click.argument("kid")
def signing_key(kid: str) -> None:
    """Make an access-token signing key KID.

    An Ed25519 key for the users service, with the id KID (e.g. k2 or 2026-11), and its public
    half for JWT_PREVIOUS_KEYS after the next rotation."""
    from app.core.security.ed25519 import new_signing_key, private_pem, public_text

    key = new_signing_key()
    one_line = private_pem(key).strip().replace("\n", "\\n")
    print(f'# the users service sets (secrets):\nJWT_KEY_ID={kid}\nJWT_PRIVATE_KEY="{one_line}"')
    public = public_text(key.public_key())
    print(f"# after the next rotation, add to JWT_PREVIOUS_KEYS:\n{kid}:{public}")
