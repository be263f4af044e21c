"""Admin over accounts: listing, roles, disabling; the last admin is kept."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.databases import operator_database
from tests.helpers import assert_problem, error_fields

USERS = "/api/v1/users"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


def roles_url(user: TestUser) -> str:
    return f"{USERS}/{user.id}/roles"


def disable_url(user: TestUser) -> str:
    return f"{USERS}/{user.id}/disable"


async def db_roles(app: FastAPI, user: TestUser) -> tuple[list[str], bool]:
    async with operator_database(app.state.runtime).session() as session:
        row = (
            await session.execute(
                text("SELECT roles, is_active FROM users.users WHERE id = :id"), {"id": user.id}
            )
        ).one()
    return list(row.roles), row.is_active


async def list_users(client: httpx.AsyncClient, admin: TestUser, **params: Any) -> dict[str, Any]:
    response = await client.get(USERS, params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.STAFF])
async def test_only_user_managers_reach_the_admin_endpoints(
    client: httpx.AsyncClient, make_user: UserFactory, role: Role
) -> None:
    caller = await make_user(role)
    target = await make_user()
    for response in (
        await client.get(USERS, headers=caller.headers),
        await client.put(roles_url(target), json={"roles": ["admin"]}, headers=caller.headers),
        await client.post(disable_url(target), headers=caller.headers),
    ):
        body = assert_problem(response, 403, "forbidden")
        assert "users:manage" in body["detail"]
    assert_problem(await client.get(USERS), 401)


async def test_list_users_pages_newest_first_and_hides_secrets(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    made = [await make_user() for _ in range(4)]
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await list_users(client, admin, **params)
        assert set(page) == {"items", "next_cursor"}
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["id"] for item in seen] == [u.id for u in reversed(made)] + [admin.id]
    assert set(seen[0]) == {
        *("id", "email", "full_name", "roles", "created_at", "status", "email_verified"),
    }
    assert {item["status"] for item in seen} == {"active"}


async def test_list_users_filters_by_email_fragment_and_role(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    staff = await make_user(Role.STAFF)
    customer = await make_user()
    by_role = await list_users(client, admin, role="staff")
    assert [item["id"] for item in by_role["items"]] == [staff.id]
    fragment = customer.email.split("@")[0].upper()
    by_email = await list_users(client, admin, email=fragment)
    assert [item["id"] for item in by_email["items"]] == [customer.id]
    # LIKE wildcards in the filter are literal characters, not patterns.
    assert (await list_users(client, admin, email="%"))["items"] == []
    assert (await list_users(client, admin, email="_"))["items"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"role": "superuser"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 101}, 422),
        ({"email": ""}, 422),
        ({"cursor": "garbage"}, 400),
    ],
)
async def test_list_users_rejects_bad_parameters(
    client: httpx.AsyncClient, make_user: UserFactory, params: dict[str, Any], status: int
) -> None:
    admin = await make_user(Role.ADMIN)
    assert_problem(await client.get(USERS, params=params, headers=admin.headers), status)


async def test_setting_roles_takes_effect_and_ends_the_users_sessions(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    user = await make_user()
    response = await client.put(
        roles_url(user), json={"roles": ["staff", "customer"]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["customer", "staff"]
    assert await db_roles(app, user) == (["customer", "staff"], True)
    # The old token carried the old roles: it no longer works.
    assert_problem(await client.get(ME, headers=user.headers), 401)
    login = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    claims = jwt.decode(login.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["customer", "staff"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"roles": []}, "body.roles"),
        ({"roles": ["root"]}, "body.roles.0"),
        ({"roles": ["admin"] * 4}, "body.roles"),
        ({"roles": ["admin"], "is_active": True}, "body.is_active"),
    ],
)
async def test_setting_roles_rejects_bad_bodies(
    client: httpx.AsyncClient,
    make_user: UserFactory,
    app: FastAPI,
    body: dict[str, Any],
    field: str,
) -> None:
    admin = await make_user(Role.ADMIN)
    user = await make_user()
    response = await client.put(roles_url(user), json=body, headers=admin.headers)
    assert field in error_fields(assert_problem(response, 422, "validation-error"))
    assert await db_roles(app, user) == (["customer"], True)


async def test_unknown_user_is_404(client: httpx.AsyncClient, make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    ghost = f"{USERS}/{uuid4()}"
    put = await client.put(f"{ghost}/roles", json={"roles": ["staff"]}, headers=admin.headers)
    assert_problem(put, 404, "user-not-found")
    assert_problem(await client.post(f"{ghost}/disable", headers=admin.headers), 404)
    assert_problem(await client.post(f"{USERS}/not-a-uuid/disable", headers=admin.headers), 422)


async def test_the_last_admin_cannot_demote_themselves(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.put(roles_url(admin), json={"roles": ["staff"]}, headers=admin.headers)
    assert_problem(response, 409, "last-admin")
    assert await db_roles(app, admin) == (["admin"], True)
    assert_problem(await client.post(disable_url(admin), headers=admin.headers), 409, "last-admin")
    assert await db_roles(app, admin) == (["admin"], True)
    assert (await client.get(ME, headers=admin.headers)).status_code == 200


async def test_one_of_two_admins_can_go_but_not_both(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    first = await make_user(Role.ADMIN)
    second = await make_user(Role.ADMIN)
    demoted = await client.put(roles_url(second), json={"roles": ["staff"]}, headers=first.headers)
    assert demoted.status_code == 200
    response = await client.put(roles_url(first), json={"roles": ["staff"]}, headers=first.headers)
    assert_problem(response, 409, "last-admin")
    assert await db_roles(app, first) == (["admin"], True)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    first = await make_user(Role.ADMIN)
    second = await make_user(Role.ADMIN)
    responses = await asyncio.gather(
        client.put(roles_url(second), json={"roles": ["staff"]}, headers=first.headers),
        client.put(roles_url(first), json={"roles": ["staff"]}, headers=second.headers),
    )
    assert sorted(r.status_code for r in responses) in ([200, 409], [200, 401])
    states = [await db_roles(app, first), await db_roles(app, second)]
    assert sorted(roles for roles, _ in states) == [["admin"], ["staff"]]


async def test_a_disabled_admin_does_not_count_as_another_admin(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    first = await make_user(Role.ADMIN)
    second = await make_user(Role.ADMIN)
    assert (await client.post(disable_url(second), headers=first.headers)).status_code == 200
    response = await client.put(roles_url(first), json={"roles": ["staff"]}, headers=first.headers)
    assert_problem(response, 409, "last-admin")


async def test_a_disabled_users_tokens_stop_working_at_once(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    user = await make_user()
    login = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    refresh_token = login.json()["refresh_token"]

    response = await client.post(disable_url(user), headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert await db_roles(app, user) == (["customer"], False)

    assert_problem(await client.get(ME, headers=user.headers), 401)
    again = await client.post(REFRESH, json={"refresh_token": refresh_token})
    assert_problem(again, 401, "invalid-refresh-token")
    relogin = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert_problem(relogin, 401, "invalid-credentials")
    listed = await list_users(client, admin, email=user.email)
    assert [item["status"] for item in listed["items"]] == ["disabled"]
