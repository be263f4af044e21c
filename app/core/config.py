"""Settings from environment variables (12-factor), with per-environment defaults.

Every variable is documented in `.env.example`. Production refuses to start on unsafe values and
names the variable at fault, so a misconfigured deploy fails its release step, not its first user.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # noqa: S105 - refused in prod
ALL_MODULES = ("users", "catalog", "orders")


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    # hide_input_in_errors: a refused config must not print its secrets into the deploy log.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    app_env: Environment = Environment.DEV
    app_name: str = "keystone"
    release: str = "dev"
    debug: bool = False
    app_modules: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(ALL_MODULES))

    database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_pre_ping: bool = True
    db_statement_timeout_ms: int = Field(default=5_000, ge=0)
    # 0 disables asyncpg's prepared-statement cache, needed behind PgBouncer/Supavisor in
    # transaction-pooling mode.
    db_statement_cache_size: int = Field(default=100, ge=0)

    redis_url: str | None = None
    redis_timeout_s: float = Field(default=2.0, gt=0)

    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_key_id: str = "k1"
    jwt_issuer: str = "keystone"
    jwt_audience: str = "keystone-api"
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    log_level: str = "INFO"
    log_json: bool | None = None

    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    outbox_poll_interval_s: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    event_max_attempts: int = Field(default=5, ge=1, le=100)
    event_retry_base_s: float = Field(default=1.0, ge=0)

    order_pending_timeout_s: int = Field(default=900, ge=1)

    # The Redis response cache. A write is visible to every reader within
    # cache_product_ttl_s / cache_listing_ttl_s at worst; event-driven invalidation makes it
    # the relay's delay (well under a second) in practice.
    cache_enabled: bool = True
    cache_product_ttl_s: int = Field(default=60, ge=1, le=86_400)
    cache_listing_ttl_s: int = Field(default=10, ge=1, le=86_400)
    cache_timeout_s: float = Field(default=0.25, gt=0, le=10)
    cache_retry_after_s: float = Field(default=1.0, ge=0, le=300)
    # A per-process copy in front of Redis; it adds at most this much to the staleness bound
    # on the other instances (0 turns it off).
    cache_local_ttl_s: float = Field(default=1.0, ge=0, le=60)
    cache_local_max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    catalog_http_max_age_s: int = Field(default=0, ge=0, le=86_400)

    @field_validator("app_modules", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("app_modules")
    @classmethod
    def _known_modules(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ALL_MODULES))
        if unknown:
            raise ValueError(
                f"APP_MODULES has unknown modules {unknown}; known: {list(ALL_MODULES)}"
            )
        if not value:
            raise ValueError("APP_MODULES must name at least one module")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.app_env is not Environment.PROD:
            return self
        secret = self.jwt_secret.get_secret_value()
        if secret == DEFAULT_JWT_SECRET or len(secret) < 32:
            raise ValueError("JWT_SECRET must be set to a random value of at least 32 characters")
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list explicit origins in prod, not '*'")
        if self.debug:
            raise ValueError("DEBUG must be false in prod")
        if not self.database_url:
            raise ValueError("DATABASE_URL must be set in prod")
        if not self.redis_url:
            raise ValueError("REDIS_URL must be set in prod")
        return self

    @property
    def logs_as_json(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.app_env not in (Environment.DEV, Environment.TEST)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set. Run `make run` to start an embedded Postgres, or export "
                "DATABASE_URL=postgresql+asyncpg://user@host:5432/db"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError(
                "REDIS_URL is not set. Run `make run` to start an embedded Redis, or export "
                "REDIS_URL=redis://127.0.0.1:6379/0"
            )
        return self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
