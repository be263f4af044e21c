"""Postgres: where each module connects, and how its pool and statements behave."""

from __future__ import annotations

from pydantic import Field

from app.core.config.base import SettingsBase


class DatabaseSettings(SettingsBase):
    database_url: str | None = None
    # Each module's own login, which can use only the module's schema (app/core/db_roles.py);
    # unset, the module connects with DATABASE_URL. `migrate` creates the roles these name
    # (with their passwords) and runs each module's migrations as its owner role.
    users_database_url: str | None = None
    catalog_database_url: str | None = None
    orders_database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_pre_ping: bool = True
    # The driver-level pool of `Database.read_row`, the one-row reads on hot paths.
    db_read_pool_size: int = Field(default=10, ge=1, le=200)
    db_statement_timeout_ms: int = Field(default=5_000, ge=0)
    # 0 disables asyncpg's prepared-statement cache, needed behind PgBouncer/Supavisor in
    # transaction-pooling mode.
    db_statement_cache_size: int = Field(default=100, ge=0)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set. Run `make run` to start an embedded Postgres, or export "
                "DATABASE_URL=postgresql+asyncpg://user@host:5432/db"
            )
        return self.database_url

    def module_database_url(self, module: str) -> str:
        """The module's own login where set, else DATABASE_URL."""
        own: str | None = getattr(self, f"{module}_database_url", None)
        return own or self.require_database_url()

    def has_database_for(self, modules: set[str]) -> bool:
        """DATABASE_URL, or each of `modules`' own login."""
        return bool(self.database_url) or all(
            getattr(self, f"{module}_database_url") for module in modules
        )
