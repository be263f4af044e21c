"""The README's run command, end to end: `python -m app.cli dev` (what `make run` calls) starts
embedded Postgres and Redis, migrates, seeds, serves the API and the worker, keeps its data
across restarts, and Ctrl-C stops everything it started. Also `arq app.worker.WorkerSettings`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.devstack import free_port
from tests.conftest import Servers

ROOT = Path(__file__).resolve().parents[1]
ADMIN = {"username": "boss@example.org", "password": "chosen-by-the-operator"}
START_TIMEOUT_S = 90


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        KEYSTONE_DATA_DIR=str(data_dir),
        PORT=str(port),
        SEED_ADMIN_EMAIL=ADMIN["username"],
        SEED_ADMIN_PASSWORD=ADMIN["password"],
        **extra,
    )
    return env


@contextmanager
def dev_stack(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        _wait_ready(base, process)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dev stack exited early:\n{process.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("dev stack did not become ready")


def _login(base: str) -> str:
    response = httpx.post(f"{base}/api/v1/auth/login", data=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _product_count(base: str) -> int:
    response = httpx.get(f"{base}/api/v1/catalog/products?limit=100", timeout=10)
    assert response.status_code == 200
    return len(response.json()["items"])


def _wait_for_mail(mail_dir: Path) -> str:
    """The first email the dev SMTP sink saved (the worker sends it after the request)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = sorted(mail_dir.glob("*.eml"))
        if saved:
            return saved[0].read_text()
        time.sleep(0.2)
    raise AssertionError("no email reached the dev SMTP sink")


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_run_command_serves_demo_data_survives_restart_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    with dev_stack(env) as (base, _):
        me = httpx.get(
            f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {_login(base)}"}
        )
        assert me.json()["roles"] == ["admin"]
        assert _product_count(base) == 6
        assert httpx.get(f"{base}/docs").status_code == 200
        assert _postgres_running(tmp_path)
    assert not _port_open(port)
    assert not _postgres_running(tmp_path)
    assert not list(tmp_path.glob("redis/*.sock"))

    with dev_stack(env) as (base, process):  # the same data, seeded idempotently
        _login(base)
        assert _product_count(base) == 6
        reset = httpx.post(
            f"{base}/api/v1/auth/password-reset", json={"email": ADMIN["username"]}, timeout=10
        )
        assert reset.status_code == 202
        email = _wait_for_mail(tmp_path / "mail")
        assert f"To: {ADMIN['username']}" in email
        assert "token=" in email
    output = process.stdout.read()  # type: ignore[union-attr]
    assert "Swagger UI  " + base + "/docs" in output
    assert f"{ADMIN['username']} / {ADMIN['password']} / admin" in output
    assert not _postgres_running(tmp_path)


async def test_run_command_uses_given_servers_and_starts_nothing_embedded(
    tmp_path: Path, servers: Servers
) -> None:
    database_url = await servers.recreate_database("keystone_dev_run")
    redis_url = servers.redis_database(5)
    env = _env(tmp_path, free_port(), DATABASE_URL=database_url, REDIS_URL=redis_url)
    with dev_stack(env) as (base, _):
        assert _login(base)
    assert not (tmp_path / "postgres").exists()
    assert not (tmp_path / "redis").exists()


@pytest.mark.usefixtures("database_url")
def test_arq_command_line_runs_the_worker(servers: Servers, database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": servers.redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "arq", "app.worker.WorkerSettings", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "orders.expire_order" in result.stdout + result.stderr
