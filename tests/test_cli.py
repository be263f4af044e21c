"""The command line as an operator uses it: `create-admin` takes the password from a prompt,
stdin or a file, never from its arguments; `payments` lists what the sandbox provider holds;
arguments the command refuses are one line naming the option, and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.modules.orders.payments.sandbox import SandboxPayments
from tests.conftest import Servers
from tests.databases import module_login_env

ROOT = Path(__file__).resolve().parents[1]
STRONG = "velvet-otter-juggles-lanterns"


@pytest.fixture(scope="module")
async def cli_env(servers: Servers) -> dict[str, str]:
    database_url = await servers.migrated_database("keystone_cli")
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        **module_login_env(database_url),
        "REDIS_URL": servers.redis_database(8),
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
async def admins(cli_env: dict[str, str]) -> AsyncIterator[None]:
    yield
    engine = create_async_engine(cli_env["DATABASE_URL"])
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE users.users, users.outbox"))
    await engine.dispose()


async def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


async def accounts(env: dict[str, str]) -> list[dict[str, Any]]:
    engine = create_async_engine(env["DATABASE_URL"])
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT email, roles, email_verified_at FROM users.users")
        )
        found = [dict(row._mapping) for row in rows]
    await engine.dispose()
    return found


@pytest.mark.usefixtures("admins")
async def test_a_password_on_the_command_line_is_refused(cli_env: dict[str, str]) -> None:
    code, _, err = await cli(
        cli_env, "create-admin", "--email", "ops@example.com", "--password", STRONG
    )
    assert code != 0
    assert "--password-stdin" in err
    assert "Traceback" not in err
    assert await accounts(cli_env) == []


@pytest.mark.usefixtures("admins")
async def test_stdin_and_file_make_a_verified_admin(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await cli(
        cli_env, "create-admin", "--email", "ops@example.com", "--password-stdin", stdin=STRONG
    )
    assert code == 0, err
    assert "admin ops@example.com created" in out
    secret = tmp_path / "password"
    secret.write_text(STRONG + "\n")
    code, _, err = await cli(
        cli_env, "create-admin", "--email", "ops2@example.com", "--password-file", str(secret)
    )
    assert code == 0, err
    made = await accounts(cli_env)
    assert {row["email"] for row in made} == {"ops@example.com", "ops2@example.com"}
    assert all(row["roles"] == ["admin"] and row["email_verified_at"] for row in made)


@pytest.mark.usefixtures("admins")
async def test_a_weak_password_or_no_terminal_is_one_line_and_nothing_made(
    cli_env: dict[str, str],
) -> None:
    code, _, err = await cli(
        cli_env, "create-admin", "--email", "ops@example.com", "--password-stdin", stdin="a" * 12
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert "password-repetitive" in line
    code, _, err = await cli(cli_env, "create-admin", "--email", "ops@example.com")
    assert code == 1
    assert "no terminal" in err
    assert "Traceback" not in err
    assert await accounts(cli_env) == []


@pytest.mark.usefixtures("admins")
async def test_the_prompt_asks_twice_and_does_not_echo(cli_env: dict[str, str]) -> None:
    output = await asyncio.to_thread(_at_a_terminal, cli_env, [STRONG, STRONG])
    assert "admin ops@example.com created" in output
    assert STRONG not in output  # typed, not shown
    output = await asyncio.to_thread(_at_a_terminal, cli_env, [STRONG, STRONG + "x"])
    assert "differ" in output
    assert [row["email"] for row in await accounts(cli_env)] == ["ops@example.com"]


def _at_a_terminal(env: dict[str, str], typed: list[str]) -> str:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "create-admin", "--email", "ops@example.com"],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = bytearray()
    for answer in typed:
        _read_until(controller, output, b": ")
        os.write(controller, answer.encode() + b"\n")
        output.extend(b"\n")  # past this prompt
    process.wait(timeout=120)
    _read_rest(controller, output)
    os.close(controller)
    return output.decode(errors="replace")


def _read_until(controller: int, output: bytearray, marker: bytes) -> None:
    start = len(output)
    deadline = time.monotonic() + 120
    while marker not in output[start:]:
        assert time.monotonic() < deadline, output.decode(errors="replace")
        output.extend(os.read(controller, 4096))


def _read_rest(controller: int, output: bytearray) -> None:
    try:
        while chunk := os.read(controller, 4096):
            output.extend(chunk)
    except OSError:  # the terminal's other end is closed
        pass


async def test_payments_lists_what_the_sandbox_holds(cli_env: dict[str, str]) -> None:
    redis = Redis.from_url(cli_env["REDIS_URL"])
    await redis.flushdb()
    sandbox = SandboxPayments(lambda: redis, slow_s=0)
    held = await sandbox.authorise(
        idempotency_key="order-1",
        reference="order-1",
        amount=Decimal("12.50"),
        currency="EUR",
        payment_method="pm_card_visa",
    )
    await sandbox.capture(idempotency_key="order-1:capture", payment_id=held)
    await redis.aclose()

    code, out, err = await cli(cli_env, "payments", "--order", "order-1")

    assert code == 0, err
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert (listed["id"], listed["status"], listed["amount"]) == (held, "succeeded", 1250)
    code, out, _ = await cli(cli_env, "payments", "--order", "no-such-order")
    assert (code, out) == (0, "")


async def test_refused_arguments_are_one_line_naming_the_option_and_exit_2(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    for args, option in (
        (("backup", str(tmp_path / "b"), "--keep", "0"), "'--keep'"),
        (("serve", "--port", "eighty"), "'--port'"),
        (("payments", "--limit", "-1"), "'--limit'"),
        (
            ("create-admin", "--email", "a@example.com", "--password-file", "/no/such/file"),
            "'--password-file'",
        ),
    ):
        code, out, err = await cli(cli_env, *args)
        assert code == 2, (args, out, err)
        [error] = [line for line in err.splitlines() if line.startswith("Error:")]
        assert option in error, err
        assert "Traceback" not in err
    assert not (tmp_path / "b").exists()
