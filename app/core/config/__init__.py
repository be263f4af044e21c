"""Settings from environment variables (12-factor), with per-environment defaults.

`Settings` is the core's: what every process reads, composed of one class per concern
(database, redis, edge, mail, tokens, events, observability, process, topology). Production
refuses to start on unsafe values and names the variable at fault, so a misconfigured deploy
fails its release step, not its first user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from app.core.config.base import ALL_MODULES, Environment, SettingsBase, check_rate_limit
from app.core.config.database import DatabaseSettings
from app.core.config.edge import EdgeSettings
from app.core.config.events import EventSettings
from app.core.config.mail import MailSettings
from app.core.config.observability import ObservabilitySettings
from app.core.config.process import ProcessSettings
from app.core.config.redis import RedisSettings
from app.core.config.tokens import TokenSettings
from app.core.config.topology import CALLER_NAME, TopologySettings

__all__ = ["ALL_MODULES", "CALLER_NAME", "Environment", "Settings", "SettingsBase", "get_settings"]


class Settings(
    ProcessSettings,
    TopologySettings,
    DatabaseSettings,
    RedisSettings,
    TokenSettings,
    MailSettings,
    EdgeSettings,
    ObservabilitySettings,
    EventSettings,
):
    refresh_token_ttl_s: int = Field(default=1_209_600, ge=60, le=31_536_000)

    password_reset_ttl_s: int = Field(default=1_800, ge=60, le=86_400)
    audit_retention_days: int = Field(default=365, ge=1, le=3_650)
    # The page of the front end that reads ?token=...; the email shows the link and the token.
    password_reset_url: str = "http://127.0.0.1:8000/reset-password"  # noqa: S105 - a URL

    # Email verification: a self-registered account verifies its address before it may order
    # (unless REQUIRE_VERIFIED_EMAIL_FOR_ORDERS is false); one never verified is deleted after
    # UNVERIFIED_RETENTION_DAYS. The email shows EMAIL_VERIFICATION_URL?token=... and the token.
    require_verified_email_for_orders: bool = True
    email_verification_ttl_s: int = Field(default=172_800, ge=300, le=2_592_000)
    email_verification_url: str = "http://127.0.0.1:8000/verify-email"
    unverified_retention_days: int = Field(default=30, ge=1, le=3_650)
    # Per account: how often a signed-in user may ask for another verification email.
    rate_limit_verification_email: str = "3/hour"

    order_pending_timeout_s: int = Field(default=900, ge=1)
    reservation_ttl_s: int = Field(default=1_800, ge=1)
    idempotency_key_ttl_s: int = Field(default=86_400, ge=60)

    payment_provider: Literal["sandbox", "http"] = "sandbox"
    payment_api_url: str | None = None
    payment_api_key: SecretStr | None = None
    payment_connect_timeout_s: float = Field(default=2.0, gt=0)
    payment_read_timeout_s: float = Field(default=5.0, gt=0)
    payment_retry_attempts: int = Field(default=3, ge=1, le=10)
    payment_retry_wait_initial_s: float = Field(default=0.2, ge=0)
    payment_retry_wait_max_s: float = Field(default=2.0, ge=0)
    payment_breaker_threshold: int = Field(default=5, ge=1)
    payment_breaker_reset_s: float = Field(default=30.0, gt=0)
    payment_sandbox_slow_s: float = Field(default=3.0, ge=0)
    payment_job_max_tries: int = Field(default=5, ge=1, le=50)
    payment_job_retry_base_s: float = Field(default=5.0, ge=0)
    payment_redrive_after_s: int = Field(default=60, ge=1)

    order_email_max_tries: int = Field(default=5, ge=1, le=50)
    order_email_retry_base_s: float = Field(default=5.0, ge=0)
    order_email_redrive_after_s: int = Field(default=300, ge=1)

    # What the catalog caches, and for how long: a write is visible to every reader within
    # these at worst; event-driven invalidation makes it the relay's delay in practice.
    cache_product_ttl_s: int = Field(default=60, ge=1, le=86_400)
    cache_listing_ttl_s: int = Field(default=10, ge=1, le=86_400)
    catalog_http_max_age_s: int = Field(default=0, ge=0, le=86_400)

    @field_validator("rate_limit_verification_email")
    @classmethod
    def _rate_limit_verification(cls, value: str) -> str:
        return check_rate_limit(value)

    @model_validator(mode="after")
    def _reservations_outlive_unanswered_orders(self) -> Settings:
        # The catalog's expiry is the safety net for when orders never answers; expiring first
        # would take stock from orders that orders itself is still settling.
        if self.reservation_ttl_s <= self.order_pending_timeout_s:
            raise ValueError(
                f"RESERVATION_TTL_S ({self.reservation_ttl_s}) must be longer than "
                f"ORDER_PENDING_TIMEOUT_S ({self.order_pending_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _only_users_signs(self) -> Settings:
        if self.jwt_private_key is not None and "users" not in self.hosted_anywhere:
            raise ValueError(
                "JWT_PRIVATE_KEY must be given only to the process hosting users: the others "
                "verify with users' public keys and must not be able to sign"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        # Staging too: it is reachable, and the dev secret is public in this repository.
        if not self.refuses_unsafe:
            return self
        if self.jwt_private_key is None and "users" in self.app_modules:
            raise ValueError(
                "JWT_PRIVATE_KEY must be set where users is hosted in staging/prod "
                "(python -m app.cli signing-key)"
            )
        if self.debug:
            raise ValueError("DEBUG must be false in staging/prod")
        self.refuse_unsafe_edge()
        if self.smtp_security == "none":
            raise ValueError("SMTP_SECURITY must be starttls or tls in staging/prod")
        if not self.has_database_for(self.hosted_anywhere):
            raise ValueError(
                "DATABASE_URL (or each hosted module's <MODULE>_DATABASE_URL) must be set in "
                "staging/prod"
            )
        if not self.redis_url:
            raise ValueError("REDIS_URL must be set in staging/prod")
        if self.payment_provider != "http" or not self.payment_api_url:
            raise ValueError(
                "PAYMENT_PROVIDER=http and PAYMENT_API_URL must be set in staging/prod"
            )
        self.refuse_unsafe_metrics()
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
