"""Data isolation enforced by Postgres: each module connects with its own login, which can use
its own schema and nothing else; migrations run as each module's owner role; `migrate` makes
the roles and grants, again and again without harm (app/core/db_roles.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.core import migrations
from app.core.config import ALL_MODULES
from app.core.db_roles import owner_role
from tests.conftest import Servers
from tests.databases import module_logins, operator_database


@pytest.mark.parametrize(
    ("module", "query"),
    [
        ("orders", "SELECT email FROM users.users"),
        ("orders", "SELECT count(*) FROM catalog.products"),
        ("catalog", "SELECT count(*) FROM orders.orders"),
        ("users", "SELECT count(*) FROM orders.orders"),
        ("catalog", "UPDATE users.users SET roles = '{admin}'"),
    ],
)
async def test_a_module_cannot_touch_another_modules_schema(
    app: FastAPI, module: str, query: str
) -> None:
    database = app.state.runtime.module(module).uow.database  # what the module itself uses
    with pytest.raises(DBAPIError) as refused:
        async with database.session() as session:
            await session.execute(text(query))
    assert "permission denied for schema" in str(refused.value)


@pytest.mark.parametrize("module", ALL_MODULES)
async def test_a_modules_login_reads_and_writes_its_tables_but_changes_no_schema(
    app: FastAPI, module: str
) -> None:
    database = app.state.runtime.module(module).uow.database
    async with database.session() as session:
        assert await session.scalar(text(f"SELECT count(*) FROM {module}.outbox")) == 0  # noqa: S608
        login = await session.scalar(text("SELECT current_user"))
    assert login == f"keystone_{module}"
    with pytest.raises(DBAPIError) as refused:
        async with database.session() as session:
            await session.execute(text(f"CREATE TABLE {module}.intruder (id int)"))
    assert "permission denied for schema" in str(refused.value)


async def test_every_object_belongs_to_its_modules_owner_role(app: FastAPI) -> None:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text(
                "SELECT n.nspname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'S', 'v')"
            ),
            {"schemas": list(ALL_MODULES)},
        )
        owners = {(schema, owner) for schema, owner in rows}
    assert owners == {(module, owner_role(module)) for module in ALL_MODULES}


async def test_migrate_is_idempotent_adopts_older_objects_and_sets_passwords(
    servers: Servers,
) -> None:
    """A database migrated before the roles existed (everything owned by the operator) is
    taken over by a later `migrate`; running it again changes nothing; a login's password is
    the one in its URL."""
    url = await servers.recreate_database("keystone_roles")
    operator = create_async_engine(url)
    try:
        async with operator.begin() as connection:
            await connection.execute(text("CREATE SCHEMA users"))
            await connection.execute(text("CREATE TABLE users.from_before (id serial)"))
        logins = module_logins(url)
        logins["users"] = (
            make_url(logins["users"])
            .set(username="keystone_users_pw", password="s3cret-'quoted")
            .render_as_string(hide_password=False)
        )
        await migrations.migrate(url, logins)
        await migrations.migrate(url, logins)
        async with operator.connect() as connection:
            owner = await connection.scalar(
                text("SELECT tableowner FROM pg_tables WHERE tablename = 'from_before'")
            )
            has_password = await connection.scalar(
                text("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = :r"),
                {"r": "keystone_users_pw"},
            )
            may_read = await connection.scalar(
                text("SELECT has_table_privilege('keystone_users_pw', 'users.users', 'SELECT')")
            )
    finally:
        await operator.dispose()
    assert owner == owner_role("users")
    assert has_password is True
    assert may_read is True
