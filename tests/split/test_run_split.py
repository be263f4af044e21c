"""`make run-split` (`python -m devtools run --split`) end to end: behind nginx on PORT, the
README's walk works unchanged (a demo customer logs in, reads the catalog, places an order that
is confirmed through the events between the services), `/internal/` is a 404, and Ctrl-C stops
every process it started, with exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import httpx
import psutil
import pytest

from app.core.security.ed25519 import new_signing_key, private_pem
from devtools.servers import free_port
from tests.conftest import Servers
from tests.helpers import order_body
from tests.test_dev_run import ROOT, START_TIMEOUT_S, _env
from tests.tools import require_tool

CUSTOMER = {"username": "customer@keystone.local", "password": "cleo-pours-v60"}


def _wait_for_gateway(base: str, process: subprocess.Popen[str]) -> None:
    """The gateway starts once every service is ready: its own /healthz says all is up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"run-split exited early:\n{process.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("run-split did not become ready")


def _walk(base: str) -> None:
    api = f"{base}/api/v1"
    login = httpx.post(f"{api}/auth/login", data=CUSTOMER, timeout=10)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    products = httpx.get(f"{api}/catalog/products?limit=1", timeout=10).json()["items"]
    placed = httpx.post(
        f"{api}/orders",
        json=order_body((products[0]["id"], 1)),
        headers={**headers, "Idempotency-Key": str(uuid4())},
        timeout=20,
    )
    assert placed.status_code == 201, placed.text
    deadline = time.monotonic() + 60
    status = placed.json()["status"]
    while status != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.5)
        order = httpx.get(f"{api}/orders/{placed.json()['id']}", headers=headers, timeout=10)
        status = order.json()["status"]
    assert status == "confirmed"
    assert httpx.get(f"{base}/internal/catalog/products", timeout=10).status_code == 404


@pytest.fixture
async def empty_database(servers: Servers) -> str:
    return await servers.recreate_database("keystone_run_split")


def _assert_each_service_holds_its_own_secrets(started: list[psutil.Process]) -> None:
    """Only users' processes hold the signing key; each service its own database login."""
    services = [p for p in started if "app.cli" in p.cmdline() and "APP_MODULES" in p.environ()]
    assert len(services) == 6  # a server and a worker per module
    for process in services:
        environ = process.environ()
        module = environ["APP_MODULES"]
        assert ("JWT_PRIVATE_KEY" in environ) == (module == "users"), module
        logins = {name for name in environ if name.endswith("_DATABASE_URL")}
        assert logins == {f"{module.upper()}_DATABASE_URL"}, (module, logins)
        assert "DATABASE_URL" not in environ, module  # the operator's login stays in the runner


def test_run_split_serves_the_walk_behind_nginx_and_stops_everything(
    tmp_path: Path, servers: Servers, empty_database: str
) -> None:
    require_tool("nginx", "nginx")
    database_url = empty_database
    port = free_port()
    env = _env(tmp_path, port, DATABASE_URL=database_url, REDIS_URL=servers.redis_database(6))
    env["JWT_PRIVATE_KEY"] = private_pem(new_signing_key())
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools", "run", "--split"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_gateway(base, process)
        started = psutil.Process(process.pid).children(recursive=True)
        assert len(started) >= 7  # three services, three workers, nginx (and the watchdog)
        _assert_each_service_holds_its_own_secrets(started)
        _walk(base)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        assert process.wait(timeout=60) == 0, process.stdout.read()  # type: ignore[union-attr]
    assert not [child for child in started if child.is_running() and child.status() != "zombie"]
