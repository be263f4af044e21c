"""Keystone's command line: `python -m app.cli <command>`, `--help` after any command for what it
takes. A file per concern; each command is a small function that parses nothing itself (click
types and checks the arguments: bad input is a one-line error and exit 2). The dev runner
(`make run`) is not here: it is devtools/, which the image does not ship."""

from __future__ import annotations

import click

from app.cli.accounts import create_admin, payments
from app.cli.backups import backup, restore
from app.cli.documents import contracts, openapi
from app.cli.keys import service_credential, signing_key
from app.cli.processes import serve, worker
from app.cli.schema import dead_letters, migrate, seed

PROG = "python -m app.cli"


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="On a laptop, `make run` (python -m devtools run) starts all of it with demo data.",
)
def cli() -> None:
    """Keystone's operations: the API and the worker as deployed, the release step, backups,
    accounts, keys and what the event transport gave up on."""


for command in (
    serve,
    worker,
    migrate,
    seed,
    backup,
    restore,
    create_admin,
    payments,
    dead_letters,
    openapi,
    contracts,
    service_credential,
    signing_key,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Exits with the command's code: 0, 1 with one line saying why, 2 for bad arguments."""
    cli.main(argv, prog_name=PROG)
