"""`create-admin` (the password from a prompt, stdin or a file, never from the command line) and
`payments` (what the sandbox provider holds)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from app.cli.runtime import load_settings, with_runtime
from app.core.security.rbac import Role
from app.modules.orders.payments.sandbox import SandboxPayments
from app.modules.orders.settings import OrdersSettings
from app.modules.users.exceptions import EmailTakenError, WeakPasswordError
from app.runtime import Runtime


@click.command("create-admin")
@click.option("--email", required=True, help="The admin's address, which you vouch for.")
@click.option("--full-name", default="Administrator", show_default=True, help="The admin's name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the password from the first line of this file.",
)
@click.option("--password", hidden=True)  # only to refuse it with the reason
def create_admin(
    email: str,
    full_name: str,
    password_stdin: bool,
    password_file: Path | None,
    password: str | None,
) -> None:
    """Create an admin account.

    Its address is taken as verified. The password is asked twice at the terminal, or read with
    --password-stdin or --password-file; never from the command line. A refused password or a
    taken address is one line, and exit 1."""
    settings = load_settings()
    secret = read_new_password(password, password_stdin, password_file)

    async def create(runtime: Runtime) -> None:
        accounts = runtime.module("users").container.accounts()
        await accounts.register(
            email, secret, full_name, frozenset({Role.ADMIN}), email_verified=True
        )

    try:
        asyncio.run(with_runtime(settings, create))
    except (WeakPasswordError, EmailTakenError) as refused:
        raise SystemExit(f"admin not created ({refused.code}): {refused.detail}") from None
    print(f"admin {email} created")


def read_new_password(given: str | None, from_stdin: bool, file: Path | None) -> str:
    """Never from the command line, which shell history and the process list keep."""
    if given is not None:
        raise SystemExit(
            "create-admin takes no --password: the shell history and the process list would "
            "keep it. Type it at the prompt, or use --password-stdin or --password-file"
        )
    if from_stdin and file is not None:
        raise click.UsageError("--password-stdin and --password-file: give one of them")
    if file is not None:
        return file.read_text(encoding="utf-8").splitlines()[0]
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit(
            "no terminal to ask the password on: use --password-stdin or --password-file"
        )
    password = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("The same again: ") != password:
        raise SystemExit("the two passwords differ; nothing was created")
    return password


@click.command()
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many."
)
@click.option("--order", metavar="ID", help="Only the payments of this order.")
def payments(limit: int, order: str | None) -> None:
    """List the sandbox provider's payments.

    What was held, charged, refunded: newest first, one JSON object a line."""
    settings = load_settings()
    if settings.module(OrdersSettings).payment_provider != "sandbox":
        raise SystemExit(
            "PAYMENT_PROVIDER is not sandbox: the provider's own dashboard lists payments"
        )

    async def read(runtime: Runtime) -> list[dict[str, Any]]:
        sandbox: SandboxPayments = runtime.module("orders").container.payments()
        return await sandbox.payments(limit, reference=order)

    for payment in asyncio.run(with_runtime(settings, read)):
        print(json.dumps(payment))
