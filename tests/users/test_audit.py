"""The audit log: what is recorded, who may read it, and that it cannot be rewritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.audit import AuditEntry, Origin, Outcome
from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory
from tests.databases import operator_database
from tests.helpers import assert_problem

AUDIT = "/api/v1/admin/audit-log"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
REFRESH = "/api/v1/auth/refresh"
USERS = "/api/v1/users"


async def audit_rows(app: FastAPI) -> list[dict[str, Any]]:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(text("SELECT * FROM users.audit_log ORDER BY id"))
        return [dict(row._mapping) for row in rows]


async def read_log(client: httpx.AsyncClient, admin: TestUser, **params: Any) -> dict[str, Any]:
    response = await client.get(AUDIT, params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_logins_are_recorded_with_ip_and_request_id(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()  # one successful login
    failed = await client.post(LOGIN, data={"username": user.email, "password": "wrong-guess-1"})
    unknown = await client.post(LOGIN, data={"username": "ghost@example.com", "password": "x"})

    rows = await audit_rows(app)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("auth.login", "success"),
        ("auth.login", "failure"),
        ("auth.login", "failure"),
    ]
    assert rows[0]["actor_id"] is not None
    assert str(rows[0]["actor_id"]) == user.id
    assert rows[0]["target"] == f"user:{user.id}"
    # A known account is named by id (erasing it leaves no email behind); an unknown by email.
    assert (rows[1]["actor_id"], rows[1]["target"]) == (None, f"user:{user.id}")
    assert rows[2]["target"] == "email:ghost@example.com"
    assert rows[1]["request_id"] == failed.headers["x-request-id"]
    assert rows[2]["request_id"] == unknown.headers["x-request-id"]
    assert {r["ip"] for r in rows} == {"127.0.0.1"}
    assert all(r["occurred_at"] is not None for r in rows)
    assert "wrong-guess-1" not in str(rows)  # a typed password is never kept


async def test_session_and_password_events_are_recorded(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    change = "/api/v1/users/me/password"
    await client.post(
        change,
        json={"current_password": "nope-nope-nope", "new_password": "fresh-passphrase-1"},
        headers=user.headers,
    )
    await client.post(
        change,
        json={"current_password": user.password, "new_password": "fresh-passphrase-1"},
        headers=user.headers,
    )
    await client.post(LOGOUT, headers=user.headers)
    await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": "made-up", "new_password": "fresh-passphrase-2"},
    )

    rows = await audit_rows(app)
    assert [(r["action"], r["outcome"]) for r in rows[1:]] == [
        ("users.password_change", "failure"),
        ("users.password_change", "success"),
        ("auth.logout", "success"),
        ("users.password_reset", "failure"),
    ]
    assert {str(r["actor_id"]) for r in rows[1:4]} == {user.id}


async def test_refresh_token_reuse_is_recorded(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    tokens = (
        await client.post(LOGIN, data={"username": user.email, "password": user.password})
    ).json()
    await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    reuse = [r for r in await audit_rows(app) if r["action"] == "auth.refresh_token_reuse"]
    assert len(reuse) == 1
    assert reuse[0]["outcome"] == "failure"
    assert reuse[0]["target"] == f"user:{user.id}"


async def test_admin_actions_are_recorded_with_actor_target_and_detail(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    user = await make_user()
    await client.put(f"{USERS}/{user.id}/roles", json={"roles": ["staff"]}, headers=admin.headers)
    await client.post(f"{USERS}/{user.id}/disable", headers=admin.headers)
    await client.post(f"{USERS}/{admin.id}/disable", headers=admin.headers)  # the last admin

    rows = [r for r in await audit_rows(app) if r["action"].startswith("users.")]
    assert [(r["action"], r["outcome"], r["target"]) for r in rows] == [
        ("users.roles_change", "success", f"user:{user.id}"),
        ("users.disable", "success", f"user:{user.id}"),
        ("users.disable", "failure", f"user:{admin.id}"),
    ]
    assert {str(r["actor_id"]) for r in rows} == {admin.id}
    assert rows[0]["detail"] == {"roles": ["staff"], "previous": ["customer"]}
    assert rows[2]["detail"] == {"error": "last-admin"}


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.STAFF])
async def test_only_audit_readers_read_the_log(
    client: httpx.AsyncClient, make_user: UserFactory, role: Role
) -> None:
    caller = await make_user(role)
    body = assert_problem(await client.get(AUDIT, headers=caller.headers), 403, "forbidden")
    assert "audit:read" in body["detail"]
    assert_problem(await client.get(AUDIT), 401)


async def test_the_log_pages_newest_first_and_filters(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    users = [await make_user() for _ in range(3)]
    everything = await read_log(client, admin, limit=100)
    assert everything["next_cursor"] is None
    ids = [item["id"] for item in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 4
    assert set(everything["items"][0]) == {
        "id",
        "occurred_at",
        "actor_id",
        "action",
        "target",
        "outcome",
        "ip",
        "request_id",
        "detail",
    }

    paged: list[int] = []
    cursor = None
    while True:
        page = await read_log(client, admin, limit=3, **({"cursor": cursor} if cursor else {}))
        paged += [item["id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert paged == ids

    mine = await read_log(client, admin, actor=users[1].id)
    assert [item["actor_id"] for item in mine["items"]] == [users[1].id]
    assert len((await read_log(client, admin, action="auth.login"))["items"]) == 4
    assert (await read_log(client, admin, action="users.disable"))["items"] == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (await read_log(client, admin, since=future))["items"] == []
    assert len((await read_log(client, admin, since=past, until=future))["items"]) == 4
    assert (await read_log(client, admin, until=past))["items"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"actor": "not-a-uuid"}, 422),
        ({"since": "yesterday"}, 422),
        ({"since": "2026-01-01T00:00:00"}, 422),  # no offset: ambiguous
        ({"until": "0.5"}, 422),  # a Unix time is not the documented format
        ({"until": "1767225600"}, 422),
        ({"action": ""}, 422),
        ({"limit": 1000}, 422),
        ({"cursor": "bogus"}, 400),
        ({"cursor": "eyJpZCI6Ii0xIn0"}, 400),  # {"id":"-1"}
    ],
)
async def test_bad_log_queries_are_refused(
    client: httpx.AsyncClient, make_user: UserFactory, params: dict[str, Any], status: int
) -> None:
    admin = await make_user(Role.ADMIN)
    assert_problem(await client.get(AUDIT, params=params, headers=admin.headers), status)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE users.audit_log SET outcome = 'success'", "DELETE FROM users.audit_log"],
)
async def test_the_log_cannot_be_rewritten(
    make_user: UserFactory, app: FastAPI, statement: str
) -> None:
    await make_user()
    before = await audit_rows(app)
    with pytest.raises(DBAPIError, match="append-only"):
        async with operator_database(app.state.runtime).session() as session:
            await session.execute(text(statement))
    assert await audit_rows(app) == before


async def test_other_modules_record_through_the_core_port(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    admin = await make_user(Role.ADMIN)
    actor, order = uuid4(), uuid4()
    await app.state.runtime.core.audit().record(
        AuditEntry(
            "orders.ship",
            Outcome.SUCCESS,
            actor,
            f"order:{order}",
            Origin(ip="203.0.113.9", request_id="req-1"),
        )
    )
    (item,) = (await read_log(client, admin, action="orders.ship"))["items"]
    assert (item["actor_id"], item["target"], item["ip"], item["request_id"]) == (
        str(actor),
        f"order:{order}",
        "203.0.113.9",
        "req-1",
    )
