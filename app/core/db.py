"""Engine, sessions and the transaction every use case runs in.

Each module owns one Postgres schema and a `MetaData(schema=...)`; a ForeignKey into another
module's schema therefore fails at DDL time, which is what keeps modules extractable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy.ext.asyncio
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
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


def _connect_args(settings: Settings) -> dict[str, Any]:
    """What every connection of either pool is opened with (asyncpg.connect's arguments)."""
    return {
        "statement_cache_size": settings.db_statement_cache_size,
        "timeout": settings.db_pool_timeout_s,
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "application_name": settings.app_name,
        },
    }


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """An engine on `url` (default DATABASE_URL) with the pool settings."""
    # Looked up at call time: the OpenTelemetry instrumentation (app/core/tracing.py) replaces
    # it to trace the engines created after it is installed.
    engine = sqlalchemy.ext.asyncio.create_async_engine(
        asyncpg_url(url or settings.require_database_url()),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # DB_POOL_PRE_PING is honoured by `_ping_on_checkout`, in one round trip.
        pool_pre_ping=False,
        connect_args=_connect_args(settings),
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


# A pooled connection the server closed (restart, failover, idle kill) surfaces as one of these
# on first use: closed, reset, or (when the server's farewell arrived before the socket closed)
# asyncpg's protocol refusing the query. The Postgres side of "unavailable" (starting up,
# shutting down, too many clients) is a PostgresConnectionError or CannotConnectNowError.
_CONNECTION_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)
_UNREACHABLE = (
    *_CONNECTION_LOST,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
_READ_POOL_CLOSE_S = 5.0


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """asyncpg's default reset on release is a round trip (advisory unlocks, CLOSE ALL,
    UNLISTEN, RESET ALL) undoing session state the driver pool's single statements never
    create; an open transaction is still rolled back by asyncpg itself before this runs."""


@dataclass(frozen=True)
class PoolUsage:
    """Connections of one pool: checked out, idle, and the most it may open."""

    pool: str
    in_use: int
    idle: int
    limit: int


class Database:
    """The process-wide engine and session factory; one per process, shared by every module.

    Beside SQLAlchemy's pool sits a small asyncpg pool for `read_row` and `fetch`: the one-row
    reads every request of a hot path makes (a product, the signed-in account), and the outbox
    relay's single-statement claims and marks. Through SQLAlchemy such a
    read costs a checkout in a greenlet, the pre-ping round trip and the checkin; on the driver's
    pool it is one round trip, which took a third off the uncached product read
    (docs/performance.md, item 12).
    """

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        self.engine = create_engine(settings, url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._read_pool_size = settings.db_read_pool_size
        self.max_overflow = settings.db_max_overflow
        self._read_connect_args = _connect_args(settings)
        self._acquire_timeout_s = settings.db_pool_timeout_s
        self._read_pool: asyncpg.Pool | None = None
        self._read_pool_opening = asyncio.Lock()

    async def read_row(self, query: str, *args: object) -> dict[str, Any] | None:
        """One row of a statement outside any transaction (committed data), or None.

        A pooled connection the server dropped is not an error: the read is tried once more, on
        a connection the pool opens afresh. A database that cannot be reached raises
        ConnectionError, which the API answers with a 503 problem."""
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetch(self, query: str, *args: object) -> list[dict[str, Any]]:
        """The rows of one statement run on its own, outside any transaction (a single statement
        is atomic by itself), on the driver's pool: one round trip, with no checkout ping and no
        BEGIN/COMMIT. Retried once on a connection the server dropped, so the statement must be
        safe to run twice; ConnectionError when the database cannot be reached."""
        pool = await self._opened_read_pool()
        try:
            try:
                return await self._fetch(pool, query, args)
            except _CONNECTION_LOST:
                return await self._fetch(pool, query, args)
        except _UNREACHABLE as exc:
            raise ConnectionError(f"database unreachable: {exc!r}") from exc

    async def _fetch(
        self, pool: asyncpg.Pool, query: str, args: tuple[object, ...]
    ) -> list[dict[str, Any]]:
        async with pool.acquire(timeout=self._acquire_timeout_s) as connection:
            rows = await connection.fetch(query, *args)
        return [dict(row) for row in rows]

    async def _opened_read_pool(self) -> asyncpg.Pool:
        if self._read_pool is None:
            async with self._read_pool_opening:
                if self._read_pool is None:
                    self._read_pool = await self._open_read_pool()
        return self._read_pool

    async def _open_read_pool(self) -> asyncpg.Pool:
        _, address = self.engine.dialect.create_connect_args(self.engine.url)
        pool: asyncpg.Pool = await asyncpg.create_pool(
            **address,
            **self._read_connect_args,
            min_size=0,  # connections are opened when reads need them, as SQLAlchemy's are
            max_size=self._read_pool_size,
            reset=_nothing_to_reset,
        )
        return pool

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        async with self.sessions.begin() as session:
            yield session

    async def listen(self, channel: str, on_message: Callable[[str], None]) -> None:
        """Until cancelled or the connection is lost: `on_message(payload)` for every NOTIFY on
        `channel`, on a connection of its own (a pooled one would be handed to others)."""
        _, address = self.engine.dialect.create_connect_args(self.engine.url)
        connection = await asyncpg.connect(**address, **self._read_connect_args)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(channel, lambda *args: on_message(str(args[-1])))
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), _READ_POOL_CLOSE_S)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def pool_usage(self) -> list[PoolUsage]:
        """Both pools as they are now: counters read in memory, no I/O (a scrape reads them)."""
        orm: Any = self.engine.pool  # a QueuePool, whose counters the Pool base lacks
        usage = [
            PoolUsage("orm", orm.checkedout(), orm.checkedin(), orm.size() + self.max_overflow)
        ]
        reads = self._read_pool
        if reads is not None:
            idle = reads.get_idle_size()
            usage.append(PoolUsage("reads", reads.get_size() - idle, idle, reads.get_max_size()))
        return usage

    async def dispose(self) -> None:
        pool, self._read_pool = self._read_pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), _READ_POOL_CLOSE_S)
            except TimeoutError:
                pool.terminate()
        await self.engine.dispose()


class Databases:
    """Each module's own `Database`, opened with the module's own login
    (`<MODULE>_DATABASE_URL`, else `DATABASE_URL`): a query into another module's schema is
    refused by Postgres itself (app/core/db_roles.py)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._opened: dict[str, Database] = {}

    def of(self, schema: str) -> Database:
        if schema not in self._opened:
            url = self._settings.module_database_url(schema)
            self._opened[schema] = Database(self._settings, url)
        return self._opened[schema]

    async def dispose(self) -> None:
        opened, self._opened = self._opened, {}
        for database in opened.values():
            await database.dispose()
