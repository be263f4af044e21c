"""Registration, login and the signed-in account, through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import text

from app.core.config import Settings
from app.core.security.ed25519 import dev_signing_key, new_signing_key
from tests.conftest import UserFactory, clock_moved_on
from tests.databases import operator_database

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
PASSWORD = "a-sturdy-passphrase"


async def register(client: httpx.AsyncClient, email: str, **extra: object) -> httpx.Response:
    body = {"email": email, "password": PASSWORD, "full_name": "Grace Hopper", **extra}
    return await client.post(REGISTER, json=body)


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, data={"username": email, "password": password})


async def test_register_creates_a_customer_and_hides_the_hash(client: httpx.AsyncClient) -> None:
    response = await register(client, "  Grace@Example.COM ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "Grace@example.com"  # trimmed, domain lower-cased
    assert body["roles"] == ["customer"]
    assert set(body) == {"id", "email", "full_name", "roles", "created_at", "email_verified"}
    assert body["email_verified"] is False


async def test_duplicate_email_is_a_409_whatever_the_domain_case(
    client: httpx.AsyncClient,
) -> None:
    assert (await register(client, "ada@example.com")).status_code == 201
    response = await register(client, "ada@EXAMPLE.com")
    assert response.status_code == 409
    assert response.json()["type"].endswith("/email-taken")


async def test_nobody_registers_themselves_as_admin(client: httpx.AsyncClient) -> None:
    response = await register(client, "mallory@example.com", roles=["admin"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.roles"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "elevenchars"),
        ("password", "x" * 129),
        ("email", "no-at-sign"),
        ("full_name", ""),
        ("full_name", "x" * 201),
        ("full_name", "tab\tinside"),
    ],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    body = {"email": "ok@example.com", "password": PASSWORD, "full_name": "Ok", field: value}
    response = await client.post(REGISTER, json=body)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]


async def test_login_returns_a_token_that_opens_me(client: httpx.AsyncClient) -> None:
    await register(client, "linus@example.com")
    response = await login(client, "linus@EXAMPLE.com", PASSWORD)
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 900
    me = await client.get(ME, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "linus@example.com"


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    await register(client, "kim@example.com")
    wrong = await login(client, "kim@example.com", "not-the-password")
    unknown = await login(client, "nobody@example.com", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    strip = {"request_id"}
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(uuid4()),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid4().hex,
        "sid": str(uuid4()),
        "typ": "access",
        "roles": ["admin"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(
    settings: Settings,
    key: Ed25519PrivateKey | None = None,
    kid: str | None = None,
    **overrides: object,
) -> str:
    """A token signed as the suite's users module signs (its development key), or not."""
    headers = {"kid": kid or settings.jwt_key_id}
    private = key or dev_signing_key()
    return jwt.encode(_claims(settings, **overrides), private, algorithm="EdDSA", headers=headers)


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "other_key",
        "no_exp",
        "no_session",
        "not_access",
        "alg_none",
        "unknown_kid",
        "no_kid",
        "symmetric",
    ],
)
async def test_hostile_tokens_get_401(
    client: httpx.AsyncClient, settings: Settings, case: str
) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    tokens = {
        "expired": lambda: _forge(settings, exp=past, iat=past - timedelta(minutes=1)),
        "wrong_audience": lambda: _forge(settings, aud="someone-else"),
        "wrong_issuer": lambda: _forge(settings, iss="evil"),
        "other_key": lambda: _forge(settings, key=new_signing_key()),
        "no_exp": lambda: _forge(settings, exp=None),
        "not_access": lambda: _forge(settings, typ="refresh"),
        "no_session": lambda: _forge(settings, sid=None),
        "alg_none": lambda: jwt.encode(
            _claims(settings), key=None, algorithm="none", headers={"kid": settings.jwt_key_id}
        ),
        "unknown_kid": lambda: _forge(settings, kid="k-unknown"),
        "no_kid": lambda: jwt.encode(_claims(settings), dev_signing_key(), algorithm="EdDSA"),
        # The old HS256 confusion: the public key (as the JWKS publishes it) used as a secret.
        "symmetric": lambda: jwt.encode(
            _claims(settings),
            dev_signing_key().public_key().public_bytes_raw(),
            algorithm="HS256",
            headers={"kid": settings.jwt_key_id},
        ),
    }
    response = await client.get(ME, headers={"Authorization": f"Bearer {tokens[case]()}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_accepted_before_is_refused_once_it_expires(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Verified tokens are remembered by their text; the expiry is still checked on every use.
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    headers = {"Authorization": f"Bearer {_forge(settings, exp=expires)}"}
    assert (await client.get(ME, headers=headers)).status_code == 404  # accepted: no such user
    with clock_moved_on((expires - datetime.now(UTC)).total_seconds() + 1):
        response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or expired access token"


async def test_valid_token_for_a_deleted_account_is_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {_forge(settings)}"})
    assert response.status_code == 404


async def test_token_carries_the_users_roles(make_user: UserFactory, settings: Settings) -> None:
    from app.core.security.rbac import Role

    staff = await make_user(Role.STAFF)
    claims = jwt.decode(
        staff.token,
        dev_signing_key().public_key(),
        algorithms=["EdDSA"],
        audience=settings.jwt_audience,
    )
    assert claims["roles"] == ["staff"]
    assert claims["sub"] == staff.id
    assert jwt.get_unverified_header(staff.token)["kid"] == settings.jwt_key_id


async def test_passwords_are_stored_as_argon2id_hashes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "hash@example.com")
    async with operator_database(app.state.runtime).session() as session:
        stored = await session.scalar(
            text("SELECT password_hash FROM users.users WHERE email = 'hash@example.com'")
        )
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_control_characters_in_the_login_name_are_a_422(client: httpx.AsyncClient) -> None:
    response = await login(client, "a\x00b@example.com", PASSWORD)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.username"
