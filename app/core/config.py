"""Settings from environment variables (12-factor), with per-environment defaults.

Every variable is documented in `.env.example`. Production refuses to start on unsafe values and
names the variable at fault, so a misconfigured deploy fails its release step, not its first user.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.core.secret_files import secret_file_sources
from app.core.security.ed25519 import check_signing_keys

ALL_MODULES = ("users", "catalog", "orders")
CALLER_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


def _parse_previous_keys(value: Any) -> Any:
    """`kid:public,kid:public` -> {kid: public}, each public key as JWK's base64url `x`."""
    if not isinstance(value, str):
        return value
    keys: dict[str, str] = {}
    for item in _split_csv(value):
        kid, sep, public = item.partition(":")
        if not sep or not kid.strip() or not public.strip():
            raise ValueError("JWT_PREVIOUS_KEYS must be a comma list of kid:public-key pairs")
        keys[kid.strip()] = public.strip()
    return keys


def _parse_service_callers(value: Any) -> Any:
    """`name:sha256hex,name:sha256hex` -> [(name, digest)]; a name may appear twice (rotation)."""
    if not isinstance(value, str):
        return value
    callers: list[tuple[str, str]] = []
    for item in _split_csv(value):
        name, sep, digest = item.partition(":")
        callers.append((name.strip(), digest.strip().lower()) if sep else ("", ""))
    return callers


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_rate_limit(value: str) -> None:
    try:
        parse_rate_limit(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a rate limit; write e.g. '300/minute' or '10/15minutes'"
        ) from None


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

    redis_url: str | None = None
    redis_timeout_s: float = Field(default=2.0, gt=0)

    # Access tokens (app/core/security/keys.py, docs/adr/0011-asymmetric-access-tokens.md):
    # the Ed25519 private key (PKCS#8 PEM) only the process hosting users holds; unset in
    # dev/test, a fixed development key signs (refused in staging/prod).
    # `python -m app.cli signing-key KID` makes one.
    jwt_private_key: SecretStr | None = None
    jwt_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    jwt_issuer: str = "keystone"
    jwt_audience: str = "keystone-api"
    # Keys that no longer sign but still verify, during a rotation: "kid:public,kid:public"
    # (public keys only, as `signing-key` prints them).
    jwt_previous_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Where users is served elsewhere: how soon a token under an unknown key id may make this
    # process fetch users' JWKS again.
    jwks_refetch_min_s: float = Field(default=10.0, ge=0, le=3_600)
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    # Each API process mirrors the token deny-list in memory, kept current through Redis
    # pub/sub (app/core/security/revocation.py); off, every request asks Redis. The mirror is
    # trusted only while a PING over its subscription came back within 2 x the heartbeat.
    revocation_mirror: bool = True
    revocation_heartbeat_s: float = Field(default=0.5, gt=0, le=10)
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

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65_535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_from: str = "Keystone <no-reply@keystone.local>"
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Edge protection (app/core/http_security.py, app/core/ratelimit.py).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    https_redirect: bool | None = None
    hsts_max_age_s: int = Field(default=31_536_000, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300/minute"
    rate_limit_routes: dict[str, str] = Field(default_factory=dict)
    rate_limit_auth_ip: str = "20/minute"
    rate_limit_auth_account: str = "10/15minutes"
    rate_limit_auth_fail_closed: bool = True

    log_level: str = "INFO"
    log_json: bool | None = None

    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    # Metrics and tracing (app/core/telemetry.py). GET /metrics answers only with
    # `Authorization: Bearer <metrics_token>` when a token is set (staging/prod require one).
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None
    # Where the worker serves its own GET /metrics (same token) while metrics are enabled.
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside its container
    worker_metrics_port: int = Field(default=9100, ge=0, le=65_535)
    # The standard OpenTelemetry variable: traces go to {endpoint}/v1/traces (OTLP/HTTP) when set.
    otel_exporter_otlp_endpoint: str | None = None
    # Share of new traces recorded; a trace begun upstream keeps the caller's decision. A recorded
    # trace costs the API far more than an unrecorded one (README "Metrics and tracing").
    tracing_sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)

    # Feature flags (app/core/flags.py, OpenFeature with the flagd provider): a flagd flag file
    # evaluated in process (no server: dev, tests, small deployments), or a flagd server whose
    # flags are synced and evaluated in process. Neither: every flag is off.
    feature_flags_file: str | None = None
    flagd_host: str | None = None
    flagd_port: int = Field(default=8015, ge=1, le=65535)

    # On SIGTERM/SIGINT: how long in-flight requests (`python -m app.cli serve`) and running jobs
    # (the worker) may finish before they are cut off. Keep them below the platform's kill timeout.
    api_shutdown_grace_s: int = Field(default=20, ge=0, le=600)
    # How long `serve` keeps an idle keep-alive connection open. Above the load balancer's own
    # idle timeout (60 s on most), or the balancer reuses connections the API has just closed
    # and answers 502; uvicorn's default is 5 s.
    api_keep_alive_s: int = Field(default=75, ge=1, le=3600)
    worker_shutdown_grace_s: int = Field(default=20, ge=0, le=600)
    # Jobs one worker runs at once per queue (they wait on the provider, SMTP, Postgres, not
    # on the CPU), and how often an idle worker asks Redis for due jobs: arq does not block on
    # the queue, so this is the wait a newly enqueued job sees at worst.
    worker_max_jobs: int = Field(default=50, ge=1, le=1_000)
    worker_poll_delay_s: float = Field(default=0.05, gt=0, le=10)

    # Commits wake every relay at once (NOTIFY); the poll is the fallback, and what picks up
    # deliveries retried with backoff.
    outbox_poll_interval_s: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    # How long a relay's claim on a batch lasts: a relay that died is taken over after this.
    outbox_lease_s: float = Field(default=30.0, gt=0, le=3_600)
    # Events of different aggregates delivered at once by one relay (each holds a connection
    # per subscriber for a transaction): keep it well under DB_POOL_SIZE + DB_MAX_OVERFLOW.
    outbox_concurrency: int = Field(default=8, ge=1, le=200)
    event_max_attempts: int = Field(default=5, ge=1, le=100)
    event_retry_base_s: float = Field(default=1.0, ge=0)
    # How events travel between modules (docs/split-topology.md, "Events"): in-process from the
    # outbox to the subscribers, or through Redis Streams (one stream per publishing module, one
    # consumer group per subscribing module). Unset: in-process when this process hosts every
    # module, Redis Streams otherwise.
    event_transport: Literal["inprocess", "redis-streams"] | None = None
    # XREADGROUP waits this long for new entries before it looks for stale ones to reclaim.
    event_stream_block_ms: int = Field(default=1_000, ge=10, le=60_000)
    event_stream_batch_size: int = Field(default=100, ge=1, le=10_000)
    # An entry read but not acknowledged for this long (its consumer died, or its delivery
    # failed) is claimed again (XAUTOCLAIM), by whichever consumer of the group looks first.
    event_stream_claim_idle_ms: int = Field(default=30_000, ge=10, le=86_400_000)
    # After this many deliveries an entry goes to its group's dead-letter stream. Above
    # EVENT_MAX_ATTEMPTS, so a handler that keeps failing ends as the inbox's dead letter first.
    event_stream_max_deliveries: int = Field(default=10, ge=1, le=1_000)
    # How often a consumer trims the streams it reads, below every group's oldest pending entry.
    event_stream_trim_interval_s: float = Field(default=60.0, gt=0, le=86_400)

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

    # --- Topology: which modules this process hosts, and where the others are -------------
    # (docs/split-topology.md). A module not hosted here is reached over HTTP at its peer URL:
    # a Kubernetes Service DNS name in production (http://catalog.shop.svc.cluster.local:8000).
    # The worker hosts WORKER_MODULES (default: APP_MODULES), one arq queue per module.
    worker_modules: Annotated[list[str] | None, NoDecode] = None
    users_url: str | None = None
    catalog_url: str | None = None
    orders_url: str | None = None
    # This process's own credential, sent to every peer it calls (X-Service-Token); each
    # provider lists the SHA-256 of the credentials it accepts, per caller name, in
    # SERVICE_CALLERS ("orders:<sha256 hex>,catalog:<sha256 hex>"). `python -m app.cli
    # service-credential NAME` makes a pair (docs/adr/0007-service-credentials.md).
    service_token: SecretStr | None = None
    service_callers: Annotated[list[tuple[str, str]], NoDecode] = Field(default_factory=list)
    peer_connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    peer_read_timeout_s: float = Field(default=3.0, gt=0, le=300)
    peer_pool_size: int = Field(default=100, ge=1, le=10_000)
    # Only idempotent calls (reads, PUT by id) are retried, with exponential backoff and jitter.
    peer_retry_attempts: int = Field(default=3, ge=1, le=10)
    peer_retry_wait_initial_s: float = Field(default=0.05, ge=0, le=10)
    peer_retry_wait_max_s: float = Field(default=1.0, ge=0, le=60)
    peer_breaker_threshold: int = Field(default=5, ge=1, le=1_000)
    peer_breaker_reset_s: float = Field(default=10.0, gt=0, le=3_600)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secrets may also come as files in SECRETS_DIR (app/core/secret_files.py).
        return secret_file_sources(settings_cls, init_settings, env_settings, dotenv_settings)

    @field_validator(
        "app_modules",
        "worker_modules",
        "cors_origins",
        "trusted_proxies",
        "trusted_hosts",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("jwt_private_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("jwt_previous_keys", mode="before")
    @classmethod
    def _previous_keys(cls, value: Any) -> Any:
        return _parse_previous_keys(value)

    @model_validator(mode="after")
    def _signing_keys(self) -> Settings:
        if self.jwt_key_id in self.jwt_previous_keys:
            raise ValueError("JWT_KEY_ID must not also be listed in JWT_PREVIOUS_KEYS")
        hosts_users = "users" in (*self.app_modules, *self.worker_hosted_modules)
        if self.jwt_private_key is not None and not hosts_users:
            raise ValueError(
                "JWT_PRIVATE_KEY must be given only to the process hosting users: the others "
                "verify with users' public keys and must not be able to sign"
            )
        check_signing_keys(self.jwt_private_key, self.jwt_previous_keys)
        return self

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

    @field_validator("app_modules", "worker_modules")
    @classmethod
    def _known_modules(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        name = (info.field_name or "").upper()
        unknown = sorted(set(value) - set(ALL_MODULES))
        if unknown:
            raise ValueError(f"{name} has unknown modules {unknown}; known: {list(ALL_MODULES)}")
        if not value:
            raise ValueError(f"{name} must name at least one module")
        return list(dict.fromkeys(value))

    @field_validator("users_url", "catalog_url", "orders_url")
    @classmethod
    def _peer_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname or url.query:
            raise ValueError(
                f"{(info.field_name or '').upper()} must be an http(s) base URL, e.g. "
                "http://catalog.shop.svc.cluster.local:8000"
            )
        return value.rstrip("/")

    @field_validator("service_callers", mode="before")
    @classmethod
    def _service_callers(cls, value: Any) -> Any:
        return _parse_service_callers(value)

    @field_validator("service_callers")
    @classmethod
    def _caller_digests(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for name, digest in value:
            if not CALLER_NAME.fullmatch(name) or not _SHA256_HEX.fullmatch(digest):
                raise ValueError(
                    "SERVICE_CALLERS must be a comma list of name:sha256, each name a-z, 0-9, "
                    "- or _ and each digest 64 hex digits (python -m app.cli service-credential)"
                )
        return value

    @model_validator(mode="after")
    def _peers_need_a_credential(self) -> Settings:
        if self.peer_urls and self.service_token is None:
            named = ", ".join(f"{name.upper()}_URL" for name in self.peer_urls)
            raise ValueError(f"SERVICE_TOKEN must be set: this process calls peers ({named})")
        if self.service_token is not None and len(self.service_token.get_secret_value()) < 32:
            raise ValueError("SERVICE_TOKEN must be a random value of at least 32 characters")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _ip_networks(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
                ) from None
        return value

    @field_validator(
        "rate_limit_default",
        "rate_limit_auth_ip",
        "rate_limit_auth_account",
        "rate_limit_verification_email",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        _check_rate_limit(value)
        return value

    @field_validator("rate_limit_routes")
    @classmethod
    def _route_rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for route, limit in value.items():
            method, _, path = route.partition(" ")
            if not method.isupper() or not path.startswith("/"):
                raise ValueError(
                    f"RATE_LIMIT_ROUTES: {route!r} must be 'METHOD /path', "
                    "e.g. 'POST /api/v1/orders'"
                )
            _check_rate_limit(limit)
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(
                "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, e.g. http://collector:4318"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        # Staging too: it is reachable, and the dev secret is public in this repository.
        if self.app_env not in (Environment.STAGING, Environment.PROD):
            return self
        if self.jwt_private_key is None and "users" in self.app_modules:
            raise ValueError(
                "JWT_PRIVATE_KEY must be set where users is hosted in staging/prod "
                "(python -m app.cli signing-key)"
            )
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list explicit origins in staging/prod, not '*'")
        if self.debug:
            raise ValueError("DEBUG must be false in staging/prod")
        if self.smtp_security == "none":
            raise ValueError("SMTP_SECURITY must be starttls or tls in staging/prod")
        hosted = {*self.app_modules, *self.worker_hosted_modules}
        if not self.database_url and not all(getattr(self, f"{m}_database_url") for m in hosted):
            raise ValueError(
                "DATABASE_URL (or each hosted module's <MODULE>_DATABASE_URL) must be set in "
                "staging/prod"
            )
        if not self.redis_url:
            raise ValueError("REDIS_URL must be set in staging/prod")
        if not self.trusted_hosts or "*" in self.trusted_hosts:
            raise ValueError(
                "TRUSTED_HOSTS must list the host names this API answers to in staging/prod"
            )
        if self.payment_provider != "http" or not self.payment_api_url:
            raise ValueError(
                "PAYMENT_PROVIDER=http and PAYMENT_API_URL must be set in staging/prod"
            )
        if self.metrics_enabled and (
            self.metrics_token is None or len(self.metrics_token.get_secret_value()) < 32
        ):
            raise ValueError(
                "METRICS_TOKEN must be a random value of at least 32 characters in staging/prod "
                "while METRICS_ENABLED is true"
            )
        return self

    @property
    def worker_hosted_modules(self) -> list[str]:
        return self.worker_modules or self.app_modules

    def events_transport(self, hosted: list[str]) -> Literal["inprocess", "redis-streams"]:
        """The transport of a process hosting `hosted`: EVENT_TRANSPORT, or by default
        in-process for a process hosting every module and Redis Streams for any other."""
        if self.event_transport is not None:
            return self.event_transport
        return "inprocess" if set(hosted) == set(ALL_MODULES) else "redis-streams"

    @property
    def peer_urls(self) -> dict[str, str]:
        """The base URL of every module configured as served elsewhere, by module name."""
        urls = {"users": self.users_url, "catalog": self.catalog_url, "orders": self.orders_url}
        return {name: url for name, url in urls.items() if url}

    @property
    def tracing_enabled(self) -> bool:
        return self.otel_exporter_otlp_endpoint is not None

    @property
    def behind_tls(self) -> bool:
        """Staging and prod are served over HTTPS only: HSTS on, plain HTTP redirected."""
        return self.app_env in (Environment.STAGING, Environment.PROD)

    @property
    def redirects_to_https(self) -> bool:
        return self.https_redirect if self.https_redirect is not None else self.behind_tls

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

    def module_database_url(self, module: str) -> str:
        """The module's own login where set, else DATABASE_URL."""
        own: str | None = getattr(self, f"{module}_database_url", None)
        return own or self.require_database_url()

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
