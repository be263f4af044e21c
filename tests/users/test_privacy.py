"""Privacy: the caller's data export (every module's part) and erasure."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import TestUser, UserFactory, eventually
from tests.databases import operator_database
from tests.helpers import ADDRESS, ORDERS, assert_problem, create_product, place_ok, settled

EXPORT = "/api/v1/users/me/export"
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
LOGIN_FAILED_PASSWORD = "typo-in-the-password"


async def erase(client: httpx.AsyncClient, user: TestUser, password: str) -> httpx.Response:
    return await client.request("DELETE", ME, json={"password": password}, headers=user.headers)


async def users_schema_dump(app: FastAPI) -> str:
    """Every row of every users table, as text."""
    async with operator_database(app.state.runtime).session() as session:
        parts = []
        for table in ("users", "refresh_tokens", "password_reset_tokens", "audit_log"):
            rows = await session.execute(text(f"SELECT t::text FROM users.{table} t"))  # noqa: S608
            parts += [row[0] for row in rows]
    return "\n".join(parts)


async def test_export_has_every_modules_part_and_no_secret(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    staff = await make_user(Role.STAFF)
    user = await make_user()
    product = await create_product(client, staff, name="Ceramic mug", price="9.50")
    order = await place_ok(client, user, (product["id"], 2))
    await settled(client, user, order["id"])

    response = await client.get(EXPORT, headers=user.headers)
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["user_id"] == user.id
    assert set(export["modules"]) == {"users", "orders"}
    account = export["modules"]["users"]["account"]
    assert (account["email"], account["full_name"]) == (user.email, "Test customer")
    assert [t["state"] for t in export["modules"]["users"]["refresh_tokens"]] == ["active"]
    assert [a["action"] for a in export["modules"]["users"]["audit_log"]] == ["auth.login"]
    (exported_order,) = export["modules"]["orders"]["orders"]
    assert exported_order["id"] == order["id"]
    assert exported_order["total"] == "19.00"
    assert exported_order["lines"][0]["name"] == "Ceramic mug"
    assert exported_order["shipping_address"]["name"] == ADDRESS["name"]

    async with operator_database(app.state.runtime).session() as session:
        secrets = await session.execute(
            text(
                "SELECT password_hash FROM users.users WHERE id = :id "
                "UNION ALL SELECT token_digest FROM users.refresh_tokens WHERE user_id = :id"
            ),
            {"id": user.id},
        )
        for (secret,) in secrets:
            assert secret not in response.text
    assert "password" not in json.dumps(export["modules"]["users"]["account"])


async def test_export_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(EXPORT), 401)


async def test_erasure_needs_the_password(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    user = await make_user()
    before = await users_schema_dump(app)
    assert_problem(await erase(client, user, "not-my-password"), 403, "wrong-password")
    assert (await client.get(ME, headers=user.headers)).status_code == 200
    assert user.email in before
    assert user.email in await users_schema_dump(app)
    assert_problem(await client.request("DELETE", ME, headers=user.headers), 422)
    extra = {"password": user.password, "keep_orders": False}
    response = await client.request("DELETE", ME, json=extra, headers=user.headers)
    assert_problem(response, 422, "validation-error")


async def test_erasure_erases_the_person_everywhere(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    staff = await make_user(Role.STAFF)
    user = await make_user()
    await client.post(LOGIN, data={"username": user.email, "password": LOGIN_FAILED_PASSWORD})
    product = await create_product(client, staff)
    order = await place_ok(client, user, (product["id"], 1))
    await settled(client, user, order["id"])

    assert (await erase(client, user, user.password)).status_code == 204

    dump = await users_schema_dump(app)
    assert user.email not in dump
    assert "Test customer" not in dump
    assert_problem(await client.get(ME, headers=user.headers), 401)
    login = await client.post(LOGIN, data={"username": user.email, "password": user.password})
    assert_problem(login, 401, "invalid-credentials")
    async with operator_database(app.state.runtime).session() as session:
        row = (
            await session.execute(
                text("SELECT email, full_name, is_active FROM users.users WHERE id = :id"),
                {"id": user.id},
            )
        ).one()
        erased_events = await session.scalar(
            text(
                "SELECT count(*) FROM users.outbox WHERE event_type = 'users.UserErased' "
                "AND payload->>'user_id' = :id"
            ),
            {"id": user.id},
        )
        total = await session.scalar(
            text("SELECT total FROM orders.orders WHERE id = :id"), {"id": order["id"]}
        )
    assert row.email == f"erased-{user.id}@erased.invalid"
    assert (row.full_name, row.is_active) == ("Erased user", False)
    assert erased_events == 1
    assert str(total) == "12.50"  # orders keep the amounts for accounting

    async def address_erased() -> bool:
        async with operator_database(app.state.runtime).session() as session:
            address = await session.scalar(
                text("SELECT shipping_address::text FROM orders.orders WHERE id = :id"),
                {"id": order["id"]},
            )
        return address == "{}"

    await eventually(address_erased)  # UserErased reaches orders through the outbox
    exported: dict[str, Any] = await app.state.runtime.core.personal_data().export(UUID(user.id))
    text_export = json.dumps(exported)
    assert user.email not in text_export
    assert "Test customer" not in text_export
    assert ADDRESS["name"] not in text_export
    assert ADDRESS["line1"] not in text_export
    assert exported["orders"]["orders"][0]["total"] == "12.50"
    # Staff still see the order, without the address.
    seen = await client.get(f"{ORDERS}/{order['id']}", headers=staff.headers)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["total"], seen.json()["shipping_address"]) == ("12.50", None)


async def test_the_last_admin_cannot_erase_themselves(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    assert_problem(await erase(client, admin, admin.password), 409, "last-admin")
    assert (await client.get(ME, headers=admin.headers)).status_code == 200
