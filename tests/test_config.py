"""Settings from the environment: production refuses unsafe values and names the variable at
fault; APP_MODULES decides which modules a process mounts, and so whose settings it reads."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import ALL_MODULES, Settings
from app.core.db import Database, create_engine
from app.core.module import API_PREFIX
from app.core.security.ed25519 import new_signing_key, private_pem
from app.main import create_app
from app.modules.catalog.settings import CatalogSettings
from app.settings import check_module_settings, every_settings_class
from devtools.servers import free_port
from tests.conftest import Servers, make_settings
from tests.settings import load_settings

STRONG_SECRET = "x7Qp2rT9vLm4Kz8Wn3Bc6Hd1Fg5Js0Ay"  # 32 characters
assert len(STRONG_SECRET) == 32
SIGNING_KEY = private_pem(new_signing_key())

VALID_PROD = {
    "APP_ENV": "prod",
    "JWT_PRIVATE_KEY": SIGNING_KEY,
    "DATABASE_URL": "postgresql://keystone:pw@db.internal:5432/keystone",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "CORS_ORIGINS": "https://shop.example.com",
    "TRUSTED_HOSTS": "api.shop.example.com",
    "PAYMENT_PROVIDER": "http",
    "PAYMENT_API_URL": "https://payments.example.com",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine running the tests."""
    for settings_class in every_settings_class():
        for field in settings_class.model_fields:
            monkeypatch.delenv(field.upper(), raising=False)
            monkeypatch.delenv(field, raising=False)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def load() -> Settings:
    """As a process hosting every module reads them: the core's and every module's."""
    settings = load_settings()
    check_module_settings(settings, ALL_MODULES)
    return settings


def test_valid_production_config_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, VALID_PROD)
    settings = load()
    assert settings.app_env == "prod"
    assert settings.jwt_private_key is not None
    assert settings.cors_origins == ["https://shop.example.com"]
    assert settings.debug is False
    assert settings.logs_as_json is True


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        pytest.param({"JWT_PRIVATE_KEY": None}, "JWT_PRIVATE_KEY", id="dev-signing-key"),
        pytest.param({"JWT_PRIVATE_KEY": STRONG_SECRET}, "JWT_PRIVATE_KEY", id="not-a-key"),
        pytest.param({"CORS_ORIGINS": "*"}, "CORS_ORIGINS", id="cors-wildcard"),
        pytest.param(
            {"CORS_ORIGINS": "https://shop.example.com, *"}, "CORS_ORIGINS", id="cors-with-wildcard"
        ),
        pytest.param({"DEBUG": "true"}, "DEBUG", id="debug"),
        pytest.param({"DATABASE_URL": None}, "DATABASE_URL", id="no-database-url"),
        pytest.param({"REDIS_URL": None}, "REDIS_URL", id="no-redis-url"),
        pytest.param({"TRUSTED_HOSTS": None}, "TRUSTED_HOSTS", id="no-trusted-hosts"),
        pytest.param({"TRUSTED_HOSTS": "*"}, "TRUSTED_HOSTS", id="any-host"),
        pytest.param({"PAYMENT_PROVIDER": "sandbox"}, "PAYMENT_PROVIDER", id="sandbox-payments"),
        pytest.param({"PAYMENT_API_URL": None}, "PAYMENT_API_URL", id="no-payment-api-url"),
        pytest.param({"METRICS_ENABLED": "true"}, "METRICS_TOKEN", id="metrics-without-token"),
        pytest.param(
            {"METRICS_ENABLED": "true", "METRICS_TOKEN": STRONG_SECRET[:31]},
            "METRICS_TOKEN",
            id="short-metrics-token",
        ),
    ],
)
@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_production_refuses_unsafe_values(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str | None], variable: str, environment: str
) -> None:
    set_env(monkeypatch, {**VALID_PROD, "APP_ENV": environment})
    for key, value in change.items():
        if value is None:
            monkeypatch.delenv(key)
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        load()
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"JWT_PRIVATE_KEY": ""}, id="dev-signing-key"),
        pytest.param({"CORS_ORIGINS": "*"}, id="cors-wildcard"),
        pytest.param({"DEBUG": "true"}, id="debug"),
        pytest.param({"REDIS_URL": ""}, id="no-redis-url"),
        pytest.param({"TRUSTED_HOSTS": ""}, id="no-trusted-hosts"),
    ],
)
def test_the_same_values_are_fine_outside_production(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str]
) -> None:
    # The refusals are about prod; dev must keep working with its defaults.
    set_env(monkeypatch, {**VALID_PROD, "APP_ENV": "dev", **change})
    assert load().app_env == "dev"


def test_metrics_with_a_token_are_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**VALID_PROD, "METRICS_ENABLED": "true", "METRICS_TOKEN": STRONG_SECRET})
    assert load().metrics_enabled is True


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector", "http://"])
def test_otlp_endpoint_must_be_an_http_url(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    with pytest.raises(ValidationError) as caught:
        load()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in str(caught.value)


def test_refusal_does_not_echo_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # A failed release step prints this error to its log; the secret must not be in it.
    set_env(monkeypatch, {"APP_ENV": "prod", "JWT_PRIVATE_KEY": SIGNING_KEY, "DEBUG": "true"})
    with pytest.raises(ValidationError) as caught:
        load()
    message = str(caught.value)
    assert "DEBUG" in message
    assert SIGNING_KEY.splitlines()[1] not in message


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"RESERVATION_TTL_S": "900"}, id="as-long-as-the-order-timeout"),
        pytest.param({"ORDER_PENDING_TIMEOUT_S": "3600"}, id="order-timeout-raised-alone"),
    ],
)
def test_reservations_must_outlive_unanswered_orders(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str]
) -> None:
    # The catalog's expiry is the safety net behind orders' own timeout, never ahead of it.
    set_env(monkeypatch, values)
    with pytest.raises(ValueError, match=r"RESERVATION_TTL_S .* ORDER_PENDING_TIMEOUT_S"):
        load()


def test_a_longer_reservation_hold_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {"ORDER_PENDING_TIMEOUT_S": "3600", "RESERVATION_TTL_S": "3601"})
    assert load().module(CatalogSettings).reservation_ttl_s == 3601


def test_each_module_reads_its_own_settings_where_it_is_hosted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two modules' own settings, both invalid: only a process hosting the module reads them.
    monkeypatch.setenv("PAYMENT_RETRY_ATTEMPTS", "many")
    monkeypatch.setenv("REFRESH_TOKEN_TTL_S", "1")
    check_module_settings(Settings(_env_file=None), ["catalog"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="OrdersSettings\npayment_retry_attempts"):
        check_module_settings(Settings(_env_file=None), ["catalog", "orders"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="UsersSettings\nrefresh_token_ttl_s"):
        check_module_settings(Settings(_env_file=None), ["users"])  # type: ignore[call-arg]


def test_a_bad_module_setting_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, servers: Servers, database_url: str
) -> None:
    monkeypatch.setenv("PAYMENT_PROVIDER", "paypal")
    read_from_the_environment = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=servers.redis_url,
    )
    with pytest.raises(ValidationError, match="payment_provider"):
        create_app(read_from_the_environment)


@pytest.mark.parametrize("value", ["-1", "601", "soon"])
def test_a_shutdown_grace_period_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("API_SHUTDOWN_GRACE_S", value)
    with pytest.raises(ValidationError, match="api_shutdown_grace_s"):
        load()


def test_app_modules_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODULES", "catalog, users")
    assert load().app_modules == ["catalog", "users"]


def test_app_modules_defaults_to_every_module() -> None:
    assert load().app_modules == ["users", "catalog", "orders"]


def test_unknown_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODULES", "catalog,payments")
    with pytest.raises(ValidationError) as caught:
        load()
    message = str(caught.value)
    assert "APP_MODULES" in message
    assert "payments" in message


def test_empty_app_modules_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODULES", " , ")
    with pytest.raises(ValidationError, match="APP_MODULES"):
        load()


def test_cors_origins_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example.com, https://b.example.com,")
    assert load().cors_origins == ["https://a.example.com", "https://b.example.com"]


NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"
# Routes of the modules that a catalog-only process must not serve.
USERS_AND_ORDERS = [
    ("POST", f"{API_PREFIX}/auth/register"),
    ("POST", f"{API_PREFIX}/auth/login"),
    ("GET", f"{API_PREFIX}/users/me"),
    ("POST", f"{API_PREFIX}/orders"),
    ("GET", f"{API_PREFIX}/orders/{NO_SUCH_ID}"),
]


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def problem_type(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_every_module_is_served_by_default(client: httpx.AsyncClient) -> None:
    # Control for the test below: with every module mounted, none of these paths is unknown.
    for method, path in USERS_AND_ORDERS:
        response = await client.request(method, path, json={})
        assert response.status_code != 404, (method, path, response.text)


# Where a catalog-only process would record its audit entries; nothing is called in these tests.
ELSEWHERE = "http://127.0.0.1:9"


async def test_app_modules_mounts_only_the_named_modules(
    servers: Servers, database_url: str
) -> None:
    settings = make_settings(
        database_url, servers.redis_url, app_modules=["catalog"], users_url=ELSEWHERE
    )
    async with serve(settings) as http:
        categories = await http.get(f"{API_PREFIX}/catalog/categories")
        assert categories.status_code == 200, categories.text

        # The catalog answers its own 404, not the router's.
        product = await http.get(f"{API_PREFIX}/catalog/products/{NO_SUCH_ID}")
        assert product.status_code == 404
        assert problem_type(product) == "product-not-found"

        for method, path in USERS_AND_ORDERS:
            response = await http.request(method, path, json={})
            assert response.status_code == 404, (method, path, response.text)
            assert problem_type(response) == "not-found"

        # A catalog-only process reports ready (its own checks, its own migrations).
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text


async def test_catalog_only_process_lists_products(servers: Servers, database_url: str) -> None:
    settings = make_settings(
        database_url, servers.redis_url, app_modules=["catalog"], users_url=ELSEWHERE
    )
    async with serve(settings) as http:
        response = await http.get(f"{API_PREFIX}/catalog/products")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}


def test_orders_without_catalog_needs_the_catalogs_url(servers: Servers, database_url: str) -> None:
    settings = make_settings(
        database_url, servers.redis_url, app_modules=["orders"], users_url=ELSEWHERE
    )
    with pytest.raises(RuntimeError, match=r"catalog is not hosted here .* CATALOG_URL is not set"):
        create_app(settings)


def test_a_catalog_only_process_needs_the_users_url(servers: Servers, database_url: str) -> None:
    # The catalog records its admins' actions in the users module's audit table.
    settings = make_settings(database_url, servers.redis_url, app_modules=["catalog"])
    with pytest.raises(RuntimeError, match=r"users is not hosted here .* USERS_URL is not set"):
        create_app(settings)


def test_a_users_only_process_needs_the_orders_url(servers: Servers, database_url: str) -> None:
    # A person's data export includes what orders holds about them.
    settings = make_settings(database_url, servers.redis_url, app_modules=["users"])
    with pytest.raises(RuntimeError, match=r"orders is not hosted here .* ORDERS_URL is not set"):
        create_app(settings)


def test_any_subset_of_modules_builds_given_the_others_urls(
    servers: Servers, database_url: str
) -> None:
    urls = {"users_url": ELSEWHERE, "catalog_url": ELSEWHERE, "orders_url": ELSEWHERE}
    for hosted in (["users"], ["catalog"], ["orders"], ["users", "orders"], ["catalog", "orders"]):
        app = create_app(make_settings(database_url, servers.redis_url, app_modules=hosted, **urls))
        assert set(app.state.containers) == set(hosted)


def test_peer_urls_need_a_service_credential() -> None:
    with pytest.raises(ValidationError, match=r"SERVICE_TOKEN must be set: .*CATALOG_URL"):
        Settings(_env_file=None, catalog_url="http://catalog:8000")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CATALOG_URL", "catalog:8000", "CATALOG_URL must be an http"),
        ("USERS_URL", "ftp://users", "USERS_URL must be an http"),
        ("SERVICE_CALLERS", "orders:not-a-digest", "SERVICE_CALLERS must be a comma list"),
        ("SERVICE_CALLERS", f"Orders:{'a' * 64}", "SERVICE_CALLERS must be a comma list"),
        ("SERVICE_TOKEN", "short", "SERVICE_TOKEN must be a random value of at least 32"),
        ("WORKER_MODULES", "orders,payments", "WORKER_MODULES has unknown modules"),
    ],
)
def test_topology_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        load()


def test_service_callers_and_worker_modules_from_comma_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = "ab" * 32
    monkeypatch.setenv("SERVICE_CALLERS", f"orders:{digest}, orders:{'cd' * 32},catalog:{digest}")
    monkeypatch.setenv("WORKER_MODULES", "orders")
    settings = load()
    assert settings.service_callers == [
        ("orders", digest),
        ("orders", "cd" * 32),
        ("catalog", digest),
    ]
    assert settings.worker_hosted_modules == ["orders"]
    monkeypatch.delenv("WORKER_MODULES")
    assert load().worker_hosted_modules == list(ALL_MODULES)  # default: APP_MODULES


def test_pool_and_statement_settings_reach_the_engine() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://u@h/db",
        db_pool_size=7,
        db_max_overflow=3,
        db_pool_timeout_s=1.5,
    )
    engine = create_engine(settings)
    pool = engine.pool
    assert engine.url.drivername == "postgresql+asyncpg"
    assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 3, 1.5)  # type: ignore[attr-defined]


async def test_statement_timeout_is_set_on_every_connection(database_url: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        db_statement_timeout_ms=1234,
    )
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "1234ms"
            with pytest.raises(DBAPIError, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(2)"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("pre_ping", [True, False])
async def test_a_pooled_connection_the_server_dropped_is_replaced_before_use(
    database_url: str, pre_ping: bool
) -> None:
    def engine_with(**pool: Any) -> AsyncEngine:
        settings = Settings(_env_file=None, database_url=database_url, **pool)  # type: ignore[call-arg]
        return create_engine(settings)

    engine = engine_with(db_pool_size=1, db_max_overflow=0, db_pool_pre_ping=pre_ping)
    admin = engine_with()
    try:
        async with engine.connect() as connection:
            dropped = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with admin.connect() as other:  # as a server restart would, while it is pooled
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        async with engine.connect() as connection:
            if not pre_ping:  # without the check, the request meets the dead connection
                with pytest.raises(DBAPIError):
                    await connection.scalar(text("SELECT pg_backend_pid()"))
                return
            replacement = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert replacement != dropped
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_one_row_reads_get_the_same_connection_settings(database_url: str) -> None:
    database = Database(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            db_statement_timeout_ms=1234,
            app_name="keystone-reads",
        )
    )
    try:
        row = await database.read_row(
            "SELECT current_setting('statement_timeout') AS timeout, "
            "current_setting('application_name') AS name"
        )
        assert row == {"timeout": "1234ms", "name": "keystone-reads"}
        with pytest.raises(asyncpg.QueryCanceledError, match="statement timeout"):
            await database.read_row("SELECT pg_sleep(2)")
    finally:
        await database.dispose()


async def test_a_one_row_read_on_a_connection_the_server_dropped_is_read_again(
    database_url: str,
) -> None:
    settings = Settings(_env_file=None, database_url=database_url, db_read_pool_size=1)  # type: ignore[call-arg]
    database, admin = Database(settings), create_engine(settings)
    try:
        dropped = await database.read_row("SELECT pg_backend_pid() AS pid")
        assert dropped is not None
        async with admin.connect() as other:  # as a server restart would, while it is pooled
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped["pid"]})
        replacement = await database.read_row("SELECT pg_backend_pid() AS pid")
        assert replacement is not None
        assert replacement["pid"] != dropped["pid"]
    finally:
        await database.dispose()
        await admin.dispose()


async def test_a_one_row_read_with_the_database_unreachable_is_a_connection_error() -> None:
    unreachable = f"postgresql+asyncpg://keystone@127.0.0.1:{free_port()}/keystone"
    database = Database(Settings(_env_file=None, database_url=unreachable))  # type: ignore[call-arg]
    try:
        with pytest.raises(ConnectionError, match="database unreachable"):
            await database.read_row("SELECT 1")
    finally:
        await database.dispose()


async def test_start_up_objects_are_kept_out_of_full_collections_while_serving(
    servers: Servers, database_url: str
) -> None:
    # The objects built at start-up are frozen (skipped by the collector's full passes) while
    # the API serves, and handed back at shutdown, so nothing built by one app outlives it.
    async with serve(make_settings(database_url, servers.redis_url)) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
