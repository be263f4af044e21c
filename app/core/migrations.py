"""Alembic, one independent history per module schema.

Each module has `migrations/<module>/` with its own `env.py` and `versions/`, and its version
table lives in its own schema (`<module>.alembic_version`), so a module's history moves with it
and never depends on another's. The same code runs from the `alembic -n <module>` command line,
from `python -m app.cli migrate`, and from the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import Settings
from app.core.db import asyncpg_url
from app.core.db_roles import become_owner, grant_logins

MIGRATIONS_ROOT = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(module: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_ROOT / module))
    return config


def head_revision(module: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(module)).get_current_head()


def context_options(schema: str) -> dict[str, Any]:
    """How alembic sees one module: only its own schema, its version table inside it."""

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "schema" or name == schema

    return {
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
    }


def run_module_migrations(schema: str, metadata: MetaData) -> None:
    """Body of every module's `env.py`."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection, schema, metadata)
        return
    url = asyncpg_url(Settings().require_database_url())
    asyncio.run(_run_with_new_engine(url, schema, metadata))


async def _run_with_new_engine(url: str, schema: str, metadata: MetaData) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run, schema, metadata)
    finally:
        await engine.dispose()


def _run(connection: Connection, schema: str, metadata: MetaData) -> None:
    become_owner(connection, schema)  # the module's owner role runs its migrations
    context.configure(connection=connection, target_metadata=metadata, **context_options(schema))
    with context.begin_transaction():
        context.run_migrations()


def _command(connection: Connection, module: str, action: str, revision: str) -> None:
    config = alembic_config(module)
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def upgrade(engine: AsyncEngine, modules: Iterable[str], revision: str = "head") -> None:
    for module in modules:
        async with engine.begin() as connection:
            await connection.run_sync(_command, module, "upgrade", revision)


async def migrate(operator_url: str, logins: Mapping[str, str]) -> None:
    """The release step: every module in `logins` (schema -> its login's URL) at its head,
    migrated as its owner role, then its login granted the use of its schema alone."""
    engine = create_async_engine(asyncpg_url(operator_url))
    try:
        await upgrade(engine, logins)
        await grant_logins(engine, logins)
    finally:
        await engine.dispose()


async def downgrade(engine: AsyncEngine, modules: Iterable[str], revision: str = "base") -> None:
    for module in reversed(list(modules)):
        async with engine.begin() as connection:
            await connection.run_sync(_command, module, "downgrade", revision)


async def current_revision(engine: AsyncEngine, module: str) -> str | None:
    """The module's applied revision, None before its first migration. Plain SQL rather than
    alembic's MigrationContext: readiness probes call this every few seconds."""
    async with engine.connect() as connection:
        exists = await connection.scalar(
            text("SELECT to_regclass(:table) IS NOT NULL"), {"table": f"{module}.alembic_version"}
        )
        if not exists:
            return None
        version_table = f'"{module}".alembic_version'  # a module name of ours, not user input
        result = await connection.scalar(text(f"SELECT version_num FROM {version_table}"))  # noqa: S608
        return str(result) if result is not None else None
