"""`backup` and `restore` (app/backup.py does the work): Postgres only, no Redis, no relay. A
backup or restore that cannot be made is one line saying why, and exit 1."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import create_async_engine

from app.backup import (
    BackupError,
    DatabaseState,
    PgClient,
    database_state,
    dated_folder,
    dump,
    load,
    prune,
    read_manifest,
)
from app.cli.runtime import load_settings
from app.core.config import Settings
from app.core.db import asyncpg_url

FOLDER = click.Path(file_okay=False, path_type=Path)
PG_BIN = click.option(
    "--pg-bin",
    metavar="DIR",
    help="The folder of pg_dump/pg_restore (default: PG_BIN_DIR, else the PATH).",
)


@click.command()
@click.argument("folder", type=FOLDER)
@PG_BIN
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    metavar="N",
    help="FOLDER holds backups: write a new one into FOLDER/<UTC time>/, keep the N newest.",
)
def backup(folder: Path, pg_bin: str | None, keep: int | None) -> None:
    """Dump the hosted modules' schemas into FOLDER.

    pg_dump (custom format) of every hosted module's schema, with a manifest of the modules'
    migration revisions; --keep N writes into FOLDER/<UTC time>/ and keeps the N newest complete
    backups. A backup that cannot be made is one line saying why, and exit 1."""
    settings = load_settings()
    state = _database_state(settings)
    target = dated_folder(folder) if keep else folder
    try:
        manifest = dump(settings.require_database_url(), state, target, _pg_client(pg_bin))
    except BackupError as error:
        raise SystemExit(f"backup failed: {error}") from None
    removed = prune(folder, keep) if keep else []
    pruned = f"; removed {', '.join(path.name for path in removed)}" if removed else ""
    print(f"backed up {', '.join(manifest.modules)} into {target}{pruned}")


@click.command()
@click.argument("folder", type=FOLDER)
@PG_BIN
def restore(folder: Path, pg_bin: str | None) -> None:
    """Restore the backup in FOLDER.

    Into a database without those schemas; then `migrate` on to the code's heads. A backup that
    cannot be restored here is one line saying why, and exit 1."""
    settings = load_settings()
    try:
        manifest = read_manifest(folder)
        before = _database_state(settings)
        load(settings.require_database_url(), before, folder, _pg_client(pg_bin))
        after = _database_state(settings)
        if after.revisions != manifest.modules:
            raise BackupError(f"restored revisions {after.revisions} differ from the manifest's")
    except BackupError as error:
        raise SystemExit(f"restore failed: {error}") from None
    print(f"restored {', '.join(manifest.modules)} from {folder} (taken {manifest.created_at})")


def _pg_client(bin_dir: str | None) -> PgClient:
    return PgClient(bin_dir or os.environ.get("PG_BIN_DIR") or None)


def _database_state(settings: Settings) -> DatabaseState:
    async def read() -> DatabaseState:
        engine = create_async_engine(asyncpg_url(settings.require_database_url()))
        try:
            return await database_state(engine, settings.app_modules)
        finally:
            await engine.dispose()

    return asyncio.run(read())
