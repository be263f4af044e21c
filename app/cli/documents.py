"""What the code declares, printed or checked: `openapi` and `contracts`."""

from __future__ import annotations

import json
import sys

import click

from app.cli.runtime import load_settings


@click.command()
def openapi() -> None:
    """Print the OpenAPI document of the hosted modules."""
    from app.main import create_app

    print(json.dumps(create_app(load_settings()).openapi(), indent=2))


@click.command()
@click.option("--write", is_flag=True, help="Refresh the snapshots (refused for a break).")
def contracts(write: bool) -> None:
    """Check the contract snapshots against the code.

    The committed snapshots in docs/contracts; exit 1 with what differs, and whether it breaks
    a reader or a writer."""
    from app.contracts import check_snapshots, write_snapshots

    problems = write_snapshots() if write else check_snapshots()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print("contract snapshots " + ("written" if write else "match the code"))
