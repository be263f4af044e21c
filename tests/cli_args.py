"""`python -m app.cli` arguments as the deploy artefacts and the docs write them, parsed by the
CLI's own commands without running them."""

from __future__ import annotations

import click

from app.cli import cli


def parse_app_cli(args: list[str]) -> click.Context:
    """The context the command would run in; click's UsageError (failing the test) for an
    unknown command or arguments the command refuses."""
    name, *rest = args
    command = cli.get_command(click.Context(cli), name)
    if command is None:
        raise click.UsageError(f"python -m app.cli has no command {name!r}")
    return command.make_context(name, rest)
