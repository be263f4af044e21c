"""The alembic histories: one per module, each confined to its own schema, matching the models.

Every test starts from a fresh, empty database, so nothing here depends on the shared test
database that the `database_url` fixture builds.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import migrations
from app.core.config import ALL_MODULES
from tests.conftest import Servers

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DATABASE = "keystone_migrations"
CLI_DATABASE = "keystone_migrations_cli"


def module_metadata(module: str) -> MetaData:
    metadata: MetaData = importlib.import_module(f"app.modules.{module}.models").metadata
    return metadata


def declared_tables(module: str) -> set[str]:
    return {table.name for table in module_metadata(module).tables.values()}


async def tables_by_schema(engine: AsyncEngine) -> dict[str, set[str]]:
    """Every user table in the database, by schema (system schemas left out)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND table_schema NOT LIKE 'pg_toast%'"
            )
        )
        found: dict[str, set[str]] = {}
        for schema, table in rows:
            found.setdefault(schema, set()).add(table)
        return found


async def foreign_keys(engine: AsyncEngine) -> list[tuple[str, str, str, str, str]]:
    """(constraint, schema, table, referenced schema, referenced table) for every foreign key."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                """
                SELECT c.conname, src_ns.nspname, src.relname, dst_ns.nspname, dst.relname
                FROM pg_constraint c
                JOIN pg_class src ON src.oid = c.conrelid
                JOIN pg_namespace src_ns ON src_ns.oid = src.relnamespace
                JOIN pg_class dst ON dst.oid = c.confrelid
                JOIN pg_namespace dst_ns ON dst_ns.oid = dst.relnamespace
                WHERE c.contype = 'f'
                """
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def cross_schema(keys: list[tuple[str, str, str, str, str]]) -> list[str]:
    return [
        f"{name}: {schema}.{table} -> {ref_schema}.{ref_table}"
        for name, schema, table, ref_schema, ref_table in keys
        if schema != ref_schema
    ]


async def autogenerate_diff(engine: AsyncEngine, module: str) -> list[Any]:
    """What `alembic revision --autogenerate` would write for this module right now."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts=migrations.context_options(module))
        return list(compare_metadata(context, module_metadata(module)))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


@pytest.fixture
async def empty_engine(servers: Servers) -> AsyncIterator[AsyncEngine]:
    url = await servers.recreate_database(MIGRATIONS_DATABASE)
    engine = create_async_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def migrated_engine(empty_engine: AsyncEngine) -> AsyncEngine:
    await migrations.upgrade(empty_engine, ALL_MODULES)
    return empty_engine


def test_every_module_has_a_migration_history() -> None:
    for module in ALL_MODULES:
        assert migrations.head_revision(module) is not None, module


async def test_fresh_database_has_no_module_tables(empty_engine: AsyncEngine) -> None:
    # The baseline the other assertions are measured against.
    assert await tables_by_schema(empty_engine) == {}
    for module in ALL_MODULES:
        assert await migrations.current_revision(empty_engine, module) is None


async def test_upgrade_puts_each_module_in_its_own_schema(migrated_engine: AsyncEngine) -> None:
    expected = {module: declared_tables(module) | {"alembic_version"} for module in ALL_MODULES}
    # Nothing in `public` or any other schema; the version table of each history is inside the
    # module's schema; every declared table is where its module says it is.
    assert await tables_by_schema(migrated_engine) == expected


async def test_upgrade_reaches_head_for_every_module(migrated_engine: AsyncEngine) -> None:
    for module in ALL_MODULES:
        head = migrations.head_revision(module)
        assert await migrations.current_revision(migrated_engine, module) == head, module


@pytest.mark.parametrize("module", ALL_MODULES)
async def test_models_match_migrations(migrated_engine: AsyncEngine, module: str) -> None:
    """A model change without its migration (or the reverse) shows up here."""
    assert await autogenerate_diff(migrated_engine, module) == []


async def test_autogenerate_sees_a_schema_drift(migrated_engine: AsyncEngine) -> None:
    # The comparison above would pass vacuously if it looked at nothing: make it look at a
    # database that differs from the models and see it notice.
    async with migrated_engine.begin() as connection:
        await connection.execute(text("ALTER TABLE catalog.products DROP COLUMN currency"))
        await connection.execute(text("CREATE TABLE catalog.stray (id integer PRIMARY KEY)"))
    diff = await autogenerate_diff(migrated_engine, "catalog")
    rendered = repr(diff)
    assert "currency" in rendered
    assert "stray" in rendered
    # Other modules' schemas are not this module's business.
    assert await autogenerate_diff(migrated_engine, "orders") == []


async def test_no_foreign_key_crosses_a_schema(migrated_engine: AsyncEngine) -> None:
    keys = await foreign_keys(migrated_engine)
    assert keys, "expected the modules' own foreign keys to be found"
    assert cross_schema(keys) == []


async def test_cross_schema_foreign_key_would_be_detected(migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE TABLE orders.bad_link ("
                " product_id uuid CONSTRAINT bad_link_product REFERENCES catalog.products (id))"
            )
        )
    assert cross_schema(await foreign_keys(migrated_engine)) == [
        "bad_link_product: orders.bad_link -> catalog.products"
    ]


async def test_downgrade_to_base_then_upgrade_again(migrated_engine: AsyncEngine) -> None:
    await migrations.downgrade(migrated_engine, ALL_MODULES)

    after_downgrade = await tables_by_schema(migrated_engine)
    # Only the (now empty) version tables remain.
    assert after_downgrade == {module: {"alembic_version"} for module in ALL_MODULES}
    for module in ALL_MODULES:
        assert await migrations.current_revision(migrated_engine, module) is None, module

    await migrations.upgrade(migrated_engine, ALL_MODULES)

    expected = {module: declared_tables(module) | {"alembic_version"} for module in ALL_MODULES}
    assert await tables_by_schema(migrated_engine) == expected
    for module in ALL_MODULES:
        head = migrations.head_revision(module)
        assert await migrations.current_revision(migrated_engine, module) == head, module
        assert await autogenerate_diff(migrated_engine, module) == [], module


async def test_one_module_migrates_without_the_others(empty_engine: AsyncEngine) -> None:
    await migrations.upgrade(empty_engine, ["orders"])
    assert await tables_by_schema(empty_engine) == {
        "orders": declared_tables("orders") | {"alembic_version"}
    }
    assert await migrations.current_revision(empty_engine, "catalog") is None


def _alembic(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {"APP_ENV", "DATABASE_URL", "APP_MODULES"}
    }
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("driver", ["postgresql+asyncpg", "postgresql"])
async def test_alembic_command_line_upgrades_one_module(servers: Servers, driver: str) -> None:
    """`alembic -n catalog upgrade head` with only DATABASE_URL set, as a release step runs it;
    a plain `postgresql://` URL (as PaaS providers hand them out) works too."""
    url = await servers.recreate_database(CLI_DATABASE)
    cli_url = make_url(url).set(drivername=driver).render_as_string(hide_password=False)

    result = _alembic("-n", "catalog", "upgrade", "head", database_url=cli_url)
    assert result.returncode == 0, result.stderr

    engine = create_async_engine(url)
    try:
        assert await tables_by_schema(engine) == {
            "catalog": declared_tables("catalog") | {"alembic_version"}
        }
        head = migrations.head_revision("catalog")
        assert await migrations.current_revision(engine, "catalog") == head
    finally:
        await engine.dispose()

    current = _alembic("-n", "catalog", "current", database_url=cli_url)
    assert current.returncode == 0, current.stderr
    assert f"{head} (head)" in current.stdout


async def test_accounts_made_before_verification_existed_count_as_verified(
    empty_engine: AsyncEngine,
) -> None:
    """Otherwise they could no longer order, and the retention cron would delete them all."""
    await migrations.upgrade(empty_engine, ["users"], "users_0003")
    async with empty_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users.users (id, email, password_hash, full_name, roles) VALUES "
                "(gen_random_uuid(), 'old@example.com', 'x', 'Old Timer', '{customer}')"
            )
        )
    await migrations.upgrade(empty_engine, ["users"])

    async with empty_engine.connect() as connection:
        verified = await connection.scalar(
            text("SELECT email_verified_at IS NOT NULL FROM users.users")
        )
    assert verified is True


async def test_summaries_the_old_event_handlers_had_not_written_yet_are_caught_up(
    empty_engine: AsyncEngine,
) -> None:
    """Orders placed and moved on before the release whose events the old handlers had not
    projected yet: the list shows them as they stand, and a newer summary is left alone."""
    await migrations.upgrade(empty_engine, ["orders"], "orders_0004")
    unprojected, behind, ahead = uuid4(), uuid4(), uuid4()
    async with empty_engine.begin() as connection:
        for order_id, status, changes in (
            (unprojected, "stock_reserved", ["pending", "stock_reserved"]),
            (behind, "paid", ["pending", "stock_reserved", "paid"]),
            (ahead, "confirmed", ["pending"]),
        ):
            await connection.execute(
                text(
                    "INSERT INTO orders.orders (id, customer_id, status, total, currency)"
                    " VALUES (:id, gen_random_uuid(), :status, 12.50, 'EUR')"
                ),
                {"id": order_id, "status": status},
            )
            await connection.execute(
                text(
                    "INSERT INTO orders.order_lines"
                    " (order_id, position, product_id, sku, name, unit_price, quantity)"
                    " VALUES (:id, 0, gen_random_uuid(), 'SKU-1', 'Lamp', 6.25, 2)"
                ),
                {"id": order_id},
            )
            for change in changes:
                await connection.execute(
                    text(
                        "INSERT INTO orders.status_changes (order_id, status, cause)"
                        " VALUES (:id, :status, 'test')"
                    ),
                    {"id": order_id, "status": change},
                )
        for order_id, status, version in ((behind, "pending", 1), (ahead, "confirmed", 9)):
            await connection.execute(
                text(
                    "INSERT INTO orders.order_summaries (order_id, customer_id, status, version,"
                    " total, currency, item_count, placed_at, updated_at)"
                    " VALUES (:id, gen_random_uuid(), :status, :version, 12.50, 'EUR', 2,"
                    " now(), now())"
                ),
                {"id": order_id, "status": status, "version": version},
            )
    await migrations.upgrade(empty_engine, ["orders"])

    async with empty_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT order_id, status, version, item_count FROM orders.order_summaries")
        )
        summaries = {row.order_id: (row.status, row.version, row.item_count) for row in rows}
    assert summaries == {
        unprojected: ("stock_reserved", 2, 2),
        behind: ("paid", 3, 2),
        ahead: ("confirmed", 9, 2),
    }
