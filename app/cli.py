"""Keystone's command line: `python -m app.cli <command>` (`make run` is `python -m devtools run`).

serve         run the API as deployed; on SIGTERM/SIGINT it refuses new connections at once and
              lets in-flight requests finish within API_SHUTDOWN_GRACE_S
migrate       upgrade every module's schema to its head; over Redis Streams, create the hosted
              modules' consumer groups (at 0: nothing published before their first start is missed)
backup DIR    pg_dump of every hosted module's schema into DIR, with a manifest of revisions;
              --keep N: into DIR/<UTC time>/, then only the N newest complete backups are kept
restore DIR   a backup into a database without those schemas (then `migrate` to the heads)
seed          add the demo data (idempotent)
create-admin  create an admin account (the password from a prompt, stdin or a file)
payments      list the sandbox payment provider's payments (what was held, charged, refunded)
worker        run the jobs and crons of the hosted modules (WORKER_MODULES), one queue each
openapi       print the OpenAPI document
dead-letters  list event deliveries that gave up (inboxes, and the streams' dead-letter entries)
service-credential NAME   a new credential for the service NAME, and the digest its peers keep
contracts     check the committed contract snapshots (docs/contracts); --write refreshes them
signing-key KID           a new access-token signing key for the users service (Ed25519)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

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
from app.bootstrap import Runtime, build_runtime, create_consumer_groups
from app.core import migrations
from app.core.config import Settings
from app.core.db import asyncpg_url
from app.core.events.bus import dead_letters
from app.core.events.streams import stream_dead_letters
from app.core.logging import configure_logging
from app.core.security.rbac import Role
from app.modules.orders.payments.sandbox import SandboxPayments
from app.modules.users.exceptions import EmailTakenError, WeakPasswordError


async def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Any]]) -> Any:
    runtime = build_runtime(settings)
    try:
        return await work(runtime)
    finally:
        await runtime.stop()


async def _migrate(runtime: Runtime) -> None:
    """Roles, schemas and migrations of the hosted modules (app/core/db_roles.py), then the
    consumer groups of the Redis Streams transport."""
    settings = runtime.settings
    logins = {module: settings.module_database_url(module) for module in settings.app_modules}
    await migrations.migrate(settings.require_database_url(), logins)
    await create_consumer_groups(runtime)


async def migrate_and_seed(runtime: Runtime) -> list[Any]:
    from app.seed import seed

    await _migrate(runtime)
    return await seed(runtime)


def cmd_migrate(settings: Settings) -> None:
    asyncio.run(with_runtime(settings, _migrate))
    print("migrated:", ", ".join(settings.app_modules))


def _pg_client(bin_dir: str | None) -> PgClient:
    return PgClient(bin_dir or os.environ.get("PG_BIN_DIR") or None)


def _database_state(settings: Settings) -> DatabaseState:
    """Postgres only: a backup or restore needs no Redis and starts no relay."""

    async def read() -> DatabaseState:
        engine = create_async_engine(asyncpg_url(settings.require_database_url()))
        try:
            return await database_state(engine, settings.app_modules)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def cmd_backup(settings: Settings, folder: Path, bin_dir: str | None, keep: int | None) -> None:
    """Exit 1 with one line saying why when the backup cannot be made."""
    state = _database_state(settings)
    target = dated_folder(folder) if keep else folder
    try:
        manifest = dump(settings.require_database_url(), state, target, _pg_client(bin_dir))
    except BackupError as error:
        sys.exit(f"backup failed: {error}")
    removed = prune(folder, keep) if keep else []
    pruned = f"; removed {', '.join(path.name for path in removed)}" if removed else ""
    print(f"backed up {', '.join(manifest.modules)} into {target}{pruned}")


def cmd_restore(settings: Settings, folder: Path, bin_dir: str | None) -> None:
    """Exit 1 with one line saying why when the backup cannot be restored here."""
    try:
        manifest = read_manifest(folder)
        before = _database_state(settings)
        load(settings.require_database_url(), before, folder, _pg_client(bin_dir))
        after = _database_state(settings)
        if after.revisions != manifest.modules:
            raise BackupError(f"restored revisions {after.revisions} differ from the manifest's")
    except BackupError as error:
        sys.exit(f"restore failed: {error}")
    print(f"restored {', '.join(manifest.modules)} from {folder} (taken {manifest.created_at})")


def cmd_seed(settings: Settings) -> None:
    asyncio.run(with_runtime(settings, migrate_and_seed))
    print("demo data in place")


def cmd_create_admin(settings: Settings, email: str, password: str, full_name: str) -> None:
    """An admin whose address the operator vouches for (verified); a refused password or a
    taken email is one line on stderr and exit 1."""

    async def create(runtime: Runtime) -> None:
        accounts = runtime.module("users").container.accounts()
        await accounts.register(
            email, password, full_name, frozenset({Role.ADMIN}), email_verified=True
        )

    try:
        asyncio.run(with_runtime(settings, create))
    except (WeakPasswordError, EmailTakenError) as refused:
        sys.exit(f"admin not created ({refused.code}): {refused.detail}")
    print(f"admin {email} created")


def read_new_password(args: argparse.Namespace) -> str:
    """From --password-file, --password-stdin (its first line), or a prompt asked twice; never
    from the command line, which shell history and the process list keep."""
    if args.password is not None:
        sys.exit(
            "create-admin takes no --password: the shell history and the process list would "
            "keep it. Type it at the prompt, or use --password-stdin or --password-file"
        )
    if args.password_file is not None:
        return Path(args.password_file).read_text(encoding="utf-8").splitlines()[0]
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        sys.exit("no terminal to ask the password on: use --password-stdin or --password-file")
    password = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("The same again: ") != password:
        sys.exit("the two passwords differ; nothing was created")
    return password


def cmd_payments(settings: Settings, limit: int, order: str | None) -> None:
    """What the sandbox payment provider holds, newest first, one JSON object a line."""
    if settings.payment_provider != "sandbox":
        sys.exit("PAYMENT_PROVIDER is not sandbox: the provider's own dashboard lists payments")

    async def read(runtime: Runtime) -> list[dict[str, Any]]:
        sandbox: SandboxPayments = runtime.module("orders").container.payments()
        return await sandbox.payments(limit, reference=order)

    for payment in asyncio.run(with_runtime(settings, read)):
        print(json.dumps(payment))


def cmd_openapi(settings: Settings) -> None:
    from app.main import create_app

    print(json.dumps(create_app(settings).openapi(), indent=2))


def cmd_dead_letters(settings: Settings) -> None:
    """One JSON object a line: the inboxes' dead letters (a handler gave up), then, over Redis
    Streams, the entries a module's consumer group gave up on (`"source": "stream"`)."""

    async def read(runtime: Runtime) -> None:
        for module in runtime.modules:
            for letter in await dead_letters(module.uow):
                print(json.dumps({"module": module.name, **asdict(letter)}, default=str))
        if runtime.consumers is None:
            return
        for consumer in runtime.consumers.consumers:
            for entry in await stream_dead_letters(runtime.core.redis(), consumer.group):
                print(json.dumps({"source": "stream", **asdict(entry)}))

    asyncio.run(with_runtime(settings, read))


def cmd_worker(settings: Settings, burst: bool) -> None:
    from app.worker import run_workers

    run_workers(settings, burst=burst)


def cmd_service_credential(caller: str) -> None:
    from app.core.security.services import credential_digest, new_service_token

    token = new_service_token()
    print(f"# the {caller} service sets (a secret):\nSERVICE_TOKEN={token}")
    print(f"# every service it calls adds to SERVICE_CALLERS:\n{caller}:{credential_digest(token)}")


def cmd_signing_key(kid: str) -> None:
    from app.core.security.ed25519 import new_signing_key, private_pem, public_text

    key = new_signing_key()
    one_line = private_pem(key).strip().replace("\n", "\\n")
    print(f'# the users service sets (secrets):\nJWT_KEY_ID={kid}\nJWT_PRIVATE_KEY="{one_line}"')
    public = public_text(key.public_key())
    print(f"# after the next rotation, add to JWT_PREVIOUS_KEYS:\n{kid}:{public}")


def cmd_contracts(write: bool) -> None:
    from app.contracts import check_snapshots, write_snapshots

    problems = write_snapshots() if write else check_snapshots()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print("contract snapshots " + ("written" if write else "match the code"))


def cmd_serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from app.main import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            lifespan="on",
            # On SIGTERM/SIGINT uvicorn closes the listener at once (new connections are refused,
            # so readiness fails from the signal on), lets in-flight requests finish for this long,
            # cancels the rest, then runs the lifespan shutdown (relay stopped, pools closed).
            timeout_graceful_shutdown=settings.api_shutdown_grace_s,
            timeout_keep_alive=settings.api_keep_alive_s,
            # app.core.logging routes uvicorn's loggers; RequestContextMiddleware logs each request.
            log_config=None,
            access_log=False,
            # X-Forwarded-* are believed only from TRUSTED_PROXIES (app.core.http_security).
            proxy_headers=False,
        )
    )
    # Once drained, uvicorn raises the signal again under the handlers it found, for the process
    # to die of it. The drain was the answer to the signal: end with 0, as the worker does.
    for drained in (signal.SIGTERM, signal.SIGINT):
        signal.signal(drained, _answered_by_the_drain)
    server.run()


def _answered_by_the_drain(_signum: int, _frame: FrameType | None) -> None:
    return None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("migrate", "seed", "openapi", "dead-letters"):
        commands.add_parser(name)
    payments = commands.add_parser("payments", help="list the sandbox provider's payments")
    payments.add_argument("--limit", type=int, default=20)
    payments.add_argument("--order", help="only the payments of this order id")
    worker = commands.add_parser("worker")
    worker.add_argument("--burst", action="store_true", help="stop once the queues are empty")
    credential = commands.add_parser("service-credential")
    credential.add_argument("caller", help="the calling service's name, e.g. orders")
    signing_key = commands.add_parser("signing-key")
    signing_key.add_argument("kid", help="the new key's id, e.g. k2 or 2026-11")
    contracts = commands.add_parser("contracts")
    contracts.add_argument("--write", action="store_true")
    for name, role in (("backup", "the folder to write"), ("restore", "the backup's folder")):
        archive = commands.add_parser(name)
        archive.add_argument("folder", type=Path, help=role)
        archive.add_argument("--pg-bin", help="folder of pg_dump/pg_restore (default PG_BIN_DIR)")
        if name == "backup":
            archive.add_argument(
                "--keep", type=_positive, help="DIR holds backups: a new one, the N newest kept"
            )
    serve = commands.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    # PORT as most platforms set it (and the image's HEALTHCHECK reads it); 8000 otherwise.
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    admin = commands.add_parser("create-admin")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", default="Administrator")
    source = admin.add_mutually_exclusive_group()
    source.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    source.add_argument("--password-file", help="read it from the first line of this file")
    source.add_argument("--password", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    if args.command == "service-credential":
        cmd_service_credential(args.caller)
        return
    if args.command == "signing-key":
        cmd_signing_key(args.kid)
        return
    if args.command == "contracts":
        cmd_contracts(args.write)
        return
    settings = Settings()
    configure_logging(settings)
    if args.command == "migrate":
        cmd_migrate(settings)
    elif args.command == "seed":
        cmd_seed(settings)
    elif args.command == "backup":
        cmd_backup(settings, args.folder, args.pg_bin, args.keep)
    elif args.command == "restore":
        cmd_restore(settings, args.folder, args.pg_bin)
    elif args.command == "serve":
        cmd_serve(settings, args.host, args.port)
    elif args.command == "worker":
        cmd_worker(settings, args.burst)
    elif args.command == "openapi":
        cmd_openapi(settings)
    elif args.command == "dead-letters":
        cmd_dead_letters(settings)
    elif args.command == "payments":
        cmd_payments(settings, args.limit, args.order)
    elif args.command == "create-admin":
        cmd_create_admin(settings, args.email, read_new_password(args), args.full_name)


if __name__ == "__main__":
    main()
