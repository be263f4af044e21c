"""Backups of every hosted module's schema, and their restore: `python -m app.cli backup` and
`restore`.

A backup is a folder: `database.dump`, pg_dump's custom format of the module schemas (data,
tables, sequences; no owners or grants, so it restores into any role's database), and
`manifest.json`, the migration revision of each module at the time, so a restore knows what it
brought back and `migrate` can take it on to the code's heads. A scheduled backup writes a
folder named by the UTC time under a folder of backups and keeps the newest few (`--keep`).
pg_dump must be at least the server's major version (pg_dump 15 refuses a PostgreSQL 18
server): PG_BIN_DIR names the folder of a matching client when PATH holds an older one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import migrations

DUMP_FILE = "database.dump"
MANIFEST_FILE = "manifest.json"
RUN_NAME = "%Y%m%dT%H%M%SZ"  # a scheduled backup's folder: sorting the names sorts the runs
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    server_version: int
    modules: dict[str, str | None]  # module -> its applied migration revision


@dataclass(frozen=True)
class PgClient:
    """pg_dump / pg_restore, from `bin_dir` when given, else from PATH."""

    bin_dir: str | None

    def path(self, tool: str) -> str:
        found = shutil.which(tool, path=self.bin_dir) if self.bin_dir else shutil.which(tool)
        if found is None:
            where = self.bin_dir or "PATH"
            raise BackupError(
                f"{tool} not found in {where}: install postgresql-client or set PG_BIN_DIR"
            )
        return found

    def major_version(self, tool: str) -> int:
        shown = subprocess.run(  # noqa: S603 - a PostgreSQL tool, asked its version
            [self.path(tool), "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = _VERSION.search(shown)
        if match is None:
            raise BackupError(f"cannot read the version of {self.path(tool)}: {shown.strip()}")
        return int(match.group(1))


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL as libpq reads it (no SQLAlchemy driver name), with the password moved to the
    environment, where `ps` cannot show it."""
    url = make_url(database_url)
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


@dataclass(frozen=True)
class DatabaseState:
    server_version: int
    revisions: dict[str, str | None]  # module -> its applied migration revision, None if absent


async def database_state(engine: AsyncEngine, modules: list[str]) -> DatabaseState:
    async with engine.connect() as connection:
        number = await connection.scalar(text("SHOW server_version_num"))
    revisions = {module: await migrations.current_revision(engine, module) for module in modules}
    return DatabaseState(int(str(number)) // 10_000, revisions)


def dump(database_url: str, state: DatabaseState, folder: Path, client: PgClient) -> Manifest:
    """pg_dump of the modules' schemas into `folder`, with the manifest beside it."""
    server = state.server_version
    client_version = client.major_version("pg_dump")
    if client_version < server:
        raise BackupError(
            f"pg_dump {client_version} cannot dump a PostgreSQL {server} server: "
            f"set PG_BIN_DIR to the bin folder of a PostgreSQL {server} client"
        )
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        server_version=server,
        modules=state.revisions,
    )
    folder.mkdir(parents=True, exist_ok=True)
    target, env = libpq_target(database_url)
    schemas = [f"--schema={module}" for module in state.revisions]
    command = [client.path("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
    _run([*command, *schemas, f"--file={folder / DUMP_FILE}", target], env)
    (folder / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> Manifest:
    try:
        return Manifest(**json.loads((folder / MANIFEST_FILE).read_text()))
    except (OSError, ValueError, TypeError) as unreadable:
        raise BackupError(f"{folder} holds no readable {MANIFEST_FILE}: {unreadable}") from None


def load(database_url: str, before: DatabaseState, folder: Path, client: PgClient) -> None:
    """pg_restore into a database without the modules' schemas (a new one, or one emptied on
    purpose): a restore never overwrites data silently."""
    occupied = sorted(module for module, revision in before.revisions.items() if revision)
    if occupied:
        raise BackupError(
            f"the database already holds the schemas of {', '.join(occupied)}: "
            "restore into a new database, or remove those schemas from it first"
        )
    target, env = libpq_target(database_url)
    command = [client.path("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    _run([*command, "--single-transaction", f"--dbname={target}", str(folder / DUMP_FILE)], env)


def _run(command: list[str], env: dict[str, str]) -> None:
    # The command is ours: a tool found on PATH or PG_BIN_DIR, and our own arguments.
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}")


def dated_folder(backups: Path) -> Path:
    """This run's folder under `backups`, named by the UTC time."""
    return backups / datetime.now(UTC).strftime(RUN_NAME)


def prune(backups: Path, keep: int) -> list[Path]:
    """Removes the scheduled backups under `backups` older than the `keep` newest complete
    ones (those with a manifest), failed runs' folders among them; returns what it removed."""
    runs = sorted(folder for folder in backups.iterdir() if _is_run(folder))
    complete = [folder for folder in runs if (folder / MANIFEST_FILE).exists()]
    if len(complete) <= keep:
        return []
    oldest_kept = complete[-keep]
    removed = [folder for folder in runs if folder.name < oldest_kept.name]
    for folder in removed:
        shutil.rmtree(folder)
    return removed


def _is_run(folder: Path) -> bool:
    try:
        datetime.strptime(folder.name, RUN_NAME)  # a name: only its shape matters
    except ValueError:
        return False
    return folder.is_dir()
