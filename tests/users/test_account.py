"""The signed-in user's own account: profile and password change."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from app.modules.users.contracts import Contact, UsersFacade
from app.modules.users.module import facade as users_facade
from tests.conftest import UserFactory
from tests.databases import operator_database
from tests.helpers import assert_problem, error_fields

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"
NEW_PASSWORD = "a-brand-new-passphrase"


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post(LOGIN, data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def stored_hash(app: FastAPI) -> str:
    async with operator_database(app.state.runtime).session() as session:
        value: str = await session.scalar(text("SELECT password_hash FROM users.users"))
    return value


async def test_patch_me_changes_the_full_name(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    response = await client.patch(ME, json={"full_name": "  Ada Lovelace "}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Ada Lovelace"
    assert (await client.get(ME, headers=user.headers)).json()["full_name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"full_name": "Ada", "email": "evil@example.com"}, "body.email"),
        ({"full_name": "Ada", "roles": ["admin"]}, "body.roles"),
        ({"full_name": ""}, "body.full_name"),
        ({"full_name": "x" * 201}, "body.full_name"),
        ({"full_name": "new\nline"}, "body.full_name"),
        ({}, "body.full_name"),
    ],
)
async def test_patch_me_changes_nothing_else(
    client: httpx.AsyncClient, make_user: UserFactory, body: dict[str, Any], field: str
) -> None:
    user = await make_user()
    response = await client.patch(ME, json=body, headers=user.headers)
    assert field in error_fields(assert_problem(response, 422, "validation-error"))
    me = (await client.get(ME, headers=user.headers)).json()
    assert (me["email"], me["roles"], me["full_name"]) == (
        user.email,
        ["customer"],
        "Test customer",
    )


async def test_patch_me_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch(ME, json={"full_name": "Ada"}), 401)


async def test_password_change_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    other = await log_in(client, user.email, user.password)
    this = await log_in(client, user.email, user.password)
    response = await client.post(
        PASSWORD,
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=bearer(this),
    )
    assert response.status_code == 204, response.text

    assert (await client.get(ME, headers=bearer(this))).status_code == 200
    refreshed = await client.post(REFRESH, json={"refresh_token": this["refresh_token"]})
    assert refreshed.status_code == 200
    for tokens in (other, {"access_token": user.token}):
        assert_problem(await client.get(ME, headers=bearer(tokens)), 401)
    gone = await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    assert_problem(gone, 401, "invalid-refresh-token")

    old = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert_problem(old, 401, "invalid-credentials")
    await log_in(client, user.email, NEW_PASSWORD)


async def test_password_change_with_a_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    before = await stored_hash(app)
    response = await client.post(
        PASSWORD,
        json={"current_password": "not-my-password", "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert_problem(response, 403, "wrong-password")
    assert await stored_hash(app) == before
    assert (await client.get(ME, headers=user.headers)).status_code == 200


@pytest.mark.parametrize(
    ("new_password", "status", "code"),
    [
        ("password1234", 422, "password-too-common"),
        ("short", 422, "validation-error"),
        ("x" * 129, 422, "validation-error"),
    ],
)
async def test_password_change_applies_the_policy(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    app: FastAPI,
    new_password: str,
    status: int,
    code: str,
) -> None:
    user = await make_user()
    before = await stored_hash(app)
    response = await client.post(
        PASSWORD,
        json={"current_password": user.password, "new_password": new_password},
        headers=user.headers,
    )
    assert_problem(response, status, code)
    assert await stored_hash(app) == before


async def test_password_change_refuses_the_email_local_part(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    local = user.email.split("@")[0]
    response = await client.post(
        PASSWORD,
        json={"current_password": user.password, "new_password": f"my-{local}-passphrase"},
        headers=user.headers,
    )
    assert_problem(response, 422, "password-contains-email")


async def test_password_change_needs_a_token(client: httpx.AsyncClient) -> None:
    body = {"current_password": "whatever-it-is", "new_password": NEW_PASSWORD}
    assert_problem(await client.post(PASSWORD, json=body), 401)


async def test_the_contract_gives_other_modules_an_active_account_contact_only(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    active, disabled = await make_user(), await make_user()
    await client.post(f"/api/v1/users/{disabled.id}/disable", headers=admin.headers)
    users: UsersFacade = users_facade(app.state.runtime.module("users"))

    contact = await users.contact(UUID(active.id))

    assert contact == Contact(
        user_id=UUID(active.id), email=active.email, full_name="Test customer"
    )
    assert await users.contact(UUID(disabled.id)) is None
    assert await users.contact(uuid4()) is None
