"""Engine, sessions and the transaction every use case runs in.

Each module owns one Postgres schema and a `MetaData(schema=...)`; a ForeignKey into another
module's schema therefore fails at DDL time, which is what keeps modules extractable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_

from app.core.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def module_metadata(schema: str) -> MetaData:
    """The metadata of one module: every table it declares lives in its own schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as PaaS providers hand them out) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        asyncpg_url(settings.require_database_url()),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # DB_POOL_PRE_PING is honoured by `_ping_on_checkout`, in one round trip.
        pool_pre_ping=False,
        connect_args={
            "statement_cache_size": settings.db_statement_cache_size,
            "timeout": settings.db_pool_timeout_s,
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": settings.app_name,
            },
        },
    )
    if settings.db_pool_pre_ping:
        event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
    return engine


def _ping_on_checkout(_: Any, __: Any, connection: Any) -> None:
    """Checks a pooled connection before use, so one the server dropped (a restart, a failover)
    is replaced instead of failing the request. SQLAlchemy's own pre-ping on asyncpg wraps its
    ping in a transaction (BEGIN, ping, ROLLBACK: three round trips, for PgBouncer), which cost
    more than the one-row reads it guarded; this is one. Raising DisconnectionError is the
    pool's documented signal to discard the connection and check out another."""
    try:
        await_(connection.driver_connection.execute("SELECT 1"))
    except Exception as exc:
        raise DisconnectionError(f"pooled connection is gone: {exc!r}") from exc


class Database:
    """The process-wide engine and session factory; one per process, shared by every module."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with self.sessions.begin() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
