"""Identity across services: users signs access tokens with its own Ed25519 key and publishes
the public half; the catalog and orders services hold no signing key and verify every token
with the keys they fetch from users' JWKS. A logout at users stops the token everywhere, and a
key rotation at users keeps the tokens signed before it valid until the old key is removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.config import ALL_MODULES, Settings
from app.core.security.ed25519 import dev_signing_key, new_signing_key, private_pem, public_text
from app.core.security.rbac import Role
from devtools.servers import free_port
from tests.conftest import eventually
from tests.helpers import ORDERS, PRODUCTS, product_body
from tests.split.conftest import Split, account, login
from tests.topology import (
    PASSWORD,
    SIGNING_KEY,
    Person,
    Service,
    running,
    split_environments,
)

JWKS = "/api/v1/auth/jwks.json"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
# What the ingress adds to a request it received over TLS (TRUSTED_PROXIES is 127.0.0.1 here).
FORWARDED_TLS = {"X-Forwarded-Proto": "https"}


def forged(key: Ed25519PrivateKey, kid: str, role: Role = Role.ADMIN) -> dict[str, str]:
    """A well-formed token for a made-up admin, signed with `key` under `kid`."""
    now = datetime.now(UTC)
    claims = {
        "iss": "keystone",
        "aud": "keystone-api",
        "sub": str(uuid4()),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid4().hex,
        "sid": str(uuid4()),
        "typ": "access",
        "roles": [role.value],
    }
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


async def test_users_publishes_its_public_key_and_only_it_holds_the_private_one(
    split: Split, services: dict[str, Service]
) -> None:
    async with split.client("users") as users:
        response = await users.get(JWKS)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.json()["keys"][0] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": public_text(SIGNING_KEY.public_key()),
        "kid": "k1",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert all("d" not in key for key in response.json()["keys"])  # never a private part
    assert "JWT_PRIVATE_KEY" in services["users"].env
    assert "JWT_PRIVATE_KEY" not in services["catalog"].env
    assert "JWT_PRIVATE_KEY" not in services["orders"].env


async def test_catalog_and_orders_accept_the_tokens_users_signs(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "identity-staff@example.com", Role.STAFF)
    customer = await account(split, "identity-customer@example.com", Role.CUSTOMER)
    async with split.client("catalog") as catalog:
        created = await catalog.post(PRODUCTS, json=product_body(), headers=staff.headers)
    assert created.status_code == 201, created.text
    async with split.client("orders") as orders:
        assert (await orders.get(ORDERS, headers=customer.headers)).status_code == 200


async def test_with_https_redirects_on_orders_still_fetches_users_keys(
    split: Split, split_settings: Settings, tmp_path: Path
) -> None:
    """As in staging/prod: users redirects plain HTTP on its public paths, which is how the
    other services call it inside the cluster, so they fetch its keys from the internal JWKS."""
    ports = {module: free_port() for module in ALL_MODULES}
    envs = split_environments(split_settings, ports, {"HTTPS_REDIRECT": "true"})
    users, orders = (
        Service(module, ports[module], envs[module], tmp_path / f"{module}.log")
        for module in ("users", "orders")
    )
    email = "identity-behind-tls@example.com"
    accounts = split.runtime.module("users").container.accounts()
    await accounts.register(
        email, PASSWORD, "Behind Tls", frozenset({Role.CUSTOMER}), email_verified=True
    )
    with running([users, orders]):  # a fresh orders: no key fetched yet
        async with httpx.AsyncClient(timeout=20) as http:
            assert (await http.get(users.url + JWKS)).status_code == 308
            logged_in = await http.post(
                users.url + LOGIN,
                data={"username": email, "password": PASSWORD},
                headers=FORWARDED_TLS,
            )
            assert logged_in.status_code == 200, logged_in.text
            bearer = {"Authorization": f"Bearer {logged_in.json()['access_token']}"}
            response = await http.get(orders.url + ORDERS, headers={**bearer, **FORWARDED_TLS})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("key", "kid"),
    [
        pytest.param(new_signing_key(), "k1", id="another-key-under-users-kid"),
        pytest.param(dev_signing_key(), "k1", id="the-public-development-key"),
        pytest.param(SIGNING_KEY, "k-unknown", id="users-key-under-an-unknown-kid"),
        pytest.param(new_signing_key(), "k-unknown", id="another-key-and-kid"),
    ],
)
async def test_a_token_under_a_key_users_does_not_publish_is_401(
    split: Split, services: dict[str, Service], key: Ed25519PrivateKey, kid: str
) -> None:
    headers = forged(key, kid)
    for module, path in (("catalog", PRODUCTS), ("orders", ORDERS)):
        async with split.client(module) as client:
            response = await client.post(path, json={}, headers=headers)
        assert response.status_code == 401, (module, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_logout_at_users_stops_the_token_at_orders(
    split: Split, services: dict[str, Service]
) -> None:
    customer = await account(split, "identity-leaver@example.com", Role.CUSTOMER)
    async with split.client("orders") as orders:
        assert (await orders.get(ORDERS, headers=customer.headers)).status_code == 200
    async with split.client("users") as users:
        assert (await users.post(LOGOUT, headers=customer.headers)).status_code == 204

    async def refused() -> bool:
        async with split.client("orders") as orders:
            return (await orders.get(ORDERS, headers=customer.headers)).status_code == 401

    await eventually(refused)


async def test_a_key_rotation_at_users_keeps_every_service_verifying(
    split: Split, services: dict[str, Service]
) -> None:
    """Users restarts with a new current key, the old one listed as previous: a token signed
    before still works at orders, and one signed after makes orders fetch the new key."""
    customer = await account(split, "identity-rotation@example.com", Role.CUSTOMER)
    rotated = new_signing_key()
    users = services["users"]
    users.env = {
        **users.env,
        "JWT_KEY_ID": "k2",
        "JWT_PRIVATE_KEY": private_pem(rotated),
        "JWT_PREVIOUS_KEYS": f"k1:{public_text(SIGNING_KEY.public_key())}",
    }
    users.stop()
    users.start()
    users.ready()
    after = await login(split, customer.email)
    assert jwt.get_unverified_header(after.headers["Authorization"][7:])["kid"] == "k2"

    async def accepted(person: Person) -> bool:
        async with split.client("orders") as orders:
            response = await orders.get(ORDERS, headers=person.headers)
        return response.status_code == 200

    assert await accepted(customer)  # signed with k1 before the rotation
    await eventually(lambda: accepted(after))  # k2: fetched once JWKS_REFETCH_MIN_S allows
    async with httpx.AsyncClient(base_url=users.url) as client:
        kids = [key["kid"] for key in (await client.get(JWKS)).json()["keys"]]
    assert kids == ["k2", "k1"]
