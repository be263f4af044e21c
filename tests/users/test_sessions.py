"""Sessions: login tokens, refresh rotation with reuse detection, logout, key rotation."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import text

from app.core.config import Settings
from app.core.security.ed25519 import (
    dev_signing_key,
    new_signing_key,
    private_pem,
    public_text,
)
from app.main import create_app
from devtools.servers import free_port
from tests.conftest import TEST_SERVICE_TOKEN, Servers, UserFactory, make_settings
from tests.databases import operator_database
from tests.helpers import assert_problem

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
JWKS = "/api/v1/auth/jwks.json"


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post(LOGIN, data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": refresh_token})


async def family_rows(app: FastAPI) -> list[dict[str, Any]]:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text("SELECT * FROM users.refresh_tokens ORDER BY created_at, id")
        )
        return [dict(row._mapping) for row in rows]


async def test_login_returns_access_and_refresh_tokens(
    client: httpx.AsyncClient, make_user: UserFactory, settings: Settings
) -> None:
    user = await make_user()
    tokens = await log_in(client, user.email, user.password)
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == settings.access_token_ttl_s
    claims = jwt.decode(
        tokens["access_token"],
        dev_signing_key().public_key(),
        algorithms=["EdDSA"],
        audience=settings.jwt_audience,
    )
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_s
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200


async def test_refresh_tokens_are_stored_only_as_digests(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    tokens = await log_in(client, user.email, user.password)
    rows = await family_rows(app)
    assert len(rows) == 2  # the fixture's login and this one
    digest = hashlib.sha256(tokens["refresh_token"].encode()).hexdigest()
    assert digest in {row["token_digest"] for row in rows}
    async with operator_database(app.state.runtime).session() as session:
        dump = await session.scalar(
            text("SELECT string_agg(t::text, '|') FROM users.refresh_tokens t")
        )
    assert tokens["refresh_token"] not in dump
    assert len(tokens["refresh_token"]) >= 43  # 256 bits, URL-safe


async def test_refresh_rotates_and_the_old_token_stops_working(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    first = await log_in(client, user.email, user.password)
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=bearer(second))).status_code == 200
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200  # the chain goes on


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    stolen = await log_in(client, user.email, user.password)
    newest = (await refresh(client, stolen["refresh_token"])).json()

    reuse = await refresh(client, stolen["refresh_token"])
    assert_problem(reuse, 401, "invalid-refresh-token")
    assert reuse.headers["www-authenticate"] == "Bearer"
    # The legitimate holder's newest tokens die with the family: refresh and access alike.
    assert_problem(await refresh(client, newest["refresh_token"]), 401, "invalid-refresh-token")
    assert_problem(await client.get(ME, headers=bearer(newest)), 401)
    sid = jwt.decode(newest["access_token"], options={"verify_signature": False})["sid"]
    family = [row for row in await family_rows(app) if str(row["family_id"]) == sid]
    assert len(family) == 2
    assert all(row["revoked_at"] is not None for row in family)
    # Another session of the same account is untouched.
    other = await log_in(client, user.email, user.password)
    assert (await refresh(client, other["refresh_token"])).status_code == 200


@pytest.mark.parametrize("token", ["", "x" * 1_001, "not-a-token-we-issued", "\u0000"])
async def test_refresh_with_junk_is_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await refresh(client, token)
    assert response.status_code in (401, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_refresh_rejects_unknown_fields_and_an_access_token(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    response = await client.post(REFRESH, json={"refresh_token": "x", "user_id": user.id})
    assert_problem(response, 422, "validation-error")
    assert_problem(await refresh(client, user.token), 401, "invalid-refresh-token")


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    tokens = await log_in(client, user.email, user.password)
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(
            text("UPDATE users.refresh_tokens SET expires_at = now() - interval '1 second'")
        )
    assert_problem(await refresh(client, tokens["refresh_token"]), 401, "invalid-refresh-token")


async def test_logout_ends_the_session_and_this_access_token(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    tokens = await log_in(client, user.email, user.password)
    response = await client.post(LOGOUT, headers=bearer(tokens))
    assert response.status_code == 204

    again = await client.get(ME, headers=bearer(tokens))
    body = assert_problem(again, 401)
    assert "revoked" in body["detail"]
    assert_problem(await refresh(client, tokens["refresh_token"]), 401, "invalid-refresh-token")
    assert_problem(await client.post(LOGOUT, headers=bearer(tokens)), 401)
    # The fixture's own session (another login) still works.
    assert (await client.get(ME, headers=user.headers)).status_code == 200


async def test_logout_also_kills_access_tokens_issued_earlier_in_the_session(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    first = await log_in(client, user.email, user.password)
    second = (await refresh(client, first["refresh_token"])).json()
    assert (await client.post(LOGOUT, headers=bearer(second))).status_code == 204
    assert_problem(await client.get(ME, headers=bearer(first)), 401)


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# The suite signs with the development key as "k1"; a rotation brings in "k2".
NEW_KEY = new_signing_key()
NEW_PEM = private_pem(NEW_KEY)
SUITE_PUBLIC = public_text(dev_signing_key().public_key())


async def _me_on(settings: Settings, token: str) -> httpx.Response:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get(ME, headers={"Authorization": f"Bearer {token}"})


async def test_a_token_signed_before_a_key_rotation_still_verifies(
    servers: Servers, database_url: str, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    rotated = make_settings(
        database_url,
        servers.redis_url,
        jwt_key_id="k2",
        jwt_private_key=NEW_PEM,
        jwt_previous_keys=f"k1:{SUITE_PUBLIC}",
    )
    assert (await _me_on(rotated, user.token)).status_code == 200

    retired = make_settings(
        database_url, servers.redis_url, jwt_key_id="k2", jwt_private_key=NEW_PEM
    )
    response = await _me_on(retired, user.token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_new_tokens_are_signed_with_the_current_key(
    servers: Servers, database_url: str, make_user: UserFactory
) -> None:
    user = await make_user()
    rotated = make_settings(
        database_url,
        servers.redis_url,
        jwt_key_id="k2",
        jwt_private_key=NEW_PEM,
        jwt_previous_keys=f"k1:{SUITE_PUBLIC}",
    )
    application = create_app(rotated)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            tokens = await log_in(http, user.email, user.password)
            jwks = (await http.get(JWKS)).json()
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == "k2"
    jwt.decode(
        tokens["access_token"],
        NEW_KEY.public_key(),
        algorithms=["EdDSA"],
        audience=rotated.jwt_audience,
    )
    # Both keys are published, the current one first, so other services verify either.
    assert [(key["kid"], key["x"]) for key in jwks["keys"]] == [
        ("k2", public_text(NEW_KEY.public_key())),
        ("k1", SUITE_PUBLIC),
    ]


def test_previous_keys_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_PREVIOUS_KEYS", f"k0:{SUITE_PUBLIC}, kx : {SUITE_PUBLIC} ")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jwt_previous_keys == {"k0": SUITE_PUBLIC, "kx": SUITE_PUBLIC}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwt_previous_keys": "no-colon"}, "kid:public-key"),
        ({"jwt_previous_keys": f"k1:{SUITE_PUBLIC}"}, "JWT_KEY_ID must not also be listed"),
        ({"jwt_previous_keys": "k0:short"}, "JWT_PREVIOUS_KEYS: 'k0' is not an Ed25519"),
        ({"jwt_private_key": "short"}, "JWT_PRIVATE_KEY is not a PEM private key"),
        ({"jwt_key_id": "k 1"}, "jwt_key_id"),
        (
            {
                "jwt_private_key": NEW_PEM,
                "app_modules": "catalog",
                "users_url": "http://u:8000",
                "service_token": TEST_SERVICE_TOKEN,  # only the key is at fault
            },
            "JWT_PRIVATE_KEY must be given only to the process hosting users",
        ),
        (
            {
                "app_env": "prod",
                "database_url": "postgresql://x/y",
                "redis_url": "redis://x",
            },
            "JWT_PRIVATE_KEY must be set where users is hosted",
        ),
    ],
)
def test_bad_key_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert message in str(error.value)
    assert "PRIVATE KEY-----" not in str(error.value)  # a key itself is never echoed


async def test_tokens_are_refused_when_revocations_cannot_be_checked(
    servers: Servers, database_url: str, make_user: UserFactory
) -> None:
    """Fail closed: with Redis unreachable a token might be revoked, so it is not accepted."""
    user = await make_user()
    unreachable = make_settings(
        database_url, f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5
    )
    response = await _me_on(unreachable, user.token)
    body = assert_problem(response, 503, "service-unavailable")
    assert "retry" in body["detail"]


async def test_a_token_that_escaped_a_racing_revocation_is_still_refused(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    """Logout racing a refresh: the logout's UPDATE waits on the row the refresh uses and then
    revokes it, but cannot see the row the refresh adds. That survivor must not work."""
    user = await make_user()
    first = await log_in(client, user.email, user.password)
    newest = (await refresh(client, first["refresh_token"])).json()
    digest = hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    async with operator_database(app.state.runtime).session() as session:
        await session.execute(
            text("UPDATE users.refresh_tokens SET revoked_at = now() WHERE token_digest = :d"),
            {"d": digest},
        )
    assert_problem(await refresh(client, newest["refresh_token"]), 401, "invalid-refresh-token")
