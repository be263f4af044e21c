"""A real Prometheus and Alertmanager for the tests, run on the shipped configs
(deploy/observability/) with only what must differ here changed: addresses, file paths, and
intervals short enough for a test. Unprivileged (`setpriv` to nobody when the tests run as
root), on free high ports, with storage in a folder of their own; plus the webhook that stands
in for the pager."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.core.config import Settings
from devtools.servers import free_port
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
START_TIMEOUT_S = 30
WORKER_START_TIMEOUT_S = 60  # the whole runtime starts before its metrics are served


@dataclass
class Webhook:
    """Alertmanager's webhook notifications, as received (the JSON bodies)."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass  # the test reads what arrived, not the server's log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder the unprivileged tools can read, with a `data` folder they can write."""
    folder = Path(tempfile.mkdtemp(prefix="keystone-observability-"))
    folder.chmod(0o755)
    (folder / "data").mkdir()
    if os.getuid() == 0:
        shutil.chown(folder / "data", "nobody")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged(command: list[str]) -> list[str]:
    if os.getuid() != 0:
        return command
    setpriv = require_tool("setpriv", "util-linux")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


@contextmanager
def _process(command: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            _unprivileged(command), stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"{command[0]} exited:\n{log.read_text()}"
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{command[0]} not ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def alertmanager_config(hook_url: str) -> dict[str, Any]:
    """The shipped routing tree and inhibitions; every receiver posts to the test's webhook
    (PagerDuty and Slack are not reachable here) and groups wait a second, not minutes."""
    config: dict[str, Any] = yaml.safe_load(
        (OBSERVABILITY / "alertmanager" / "alertmanager.yml").read_text()
    )
    for receiver in config["receivers"]:
        name = receiver["name"]
        receiver.clear()
        receiver.update({"name": name, "webhook_configs": [{"url": hook_url}]})
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    return config


@contextmanager
def alertmanager(folder: Path, hook_url: str) -> Iterator[str]:
    binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(hook_url)))
    base = f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.path={folder / 'data' / 'alertmanager'}",
        f"--web.listen-address={base.removeprefix('http://')}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
    with _process(command, folder / "alertmanager.log", f"{base}/-/ready"):
        yield base


def alert_rules_for_tests() -> dict[str, Any]:
    """The shipped alerts, with KeystoneNotReady firing as soon as it is true (2 minutes in
    production: the rule unit tests cover the waiting)."""
    rules: dict[str, Any] = yaml.safe_load(
        (PROMETHEUS_DIR / "keystone-alerts.rules.yml").read_text()
    )
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "KeystoneNotReady":
                rule["for"] = "0s"
    return rules


@contextmanager
def prometheus(
    folder: Path, api: str, worker: str, token: str, alertmanager_url: str
) -> Iterator[str]:
    """Prometheus on the shipped config: scraping the `api` and `worker` (host:port) every
    second with `token`, evaluating the shipped rules every second, alerting `alertmanager_url`."""
    binary = require_tool("prometheus", "prometheus")
    token_file = folder / "metrics-token"
    token_file.write_text(token)
    alerts = folder / "keystone-alerts.rules.yml"
    alerts.write_text(yaml.safe_dump(alert_rules_for_tests()))
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(PROMETHEUS_DIR / "keystone-sli.rules.yml"), str(alerts)]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        alertmanager_url.removeprefix("http://")
    ]
    [job] = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(token_file)
    api_targets, worker_targets = job["static_configs"]
    api_targets["targets"], worker_targets["targets"] = [api], [worker]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    base = f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data' / 'prometheus'}",
        f"--web.listen-address={base.removeprefix('http://')}",
        "--storage.tsdb.retention.time=1h",
    ]
    with _process(command, folder / "prometheus.log", f"{base}/-/ready"):
        yield base


@contextmanager
def serving_worker(settings: Settings, log: Path, token: str) -> Iterator[str]:
    """`python -m app.cli worker`, as deployed, on the settings' database and Redis, with its
    GET /metrics behind `token` on a free port; yields that port's host:port."""
    address = f"127.0.0.1:{free_port()}"
    environment = {
        **os.environ,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "APP_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "METRICS_ENABLED": "true",
        "METRICS_TOKEN": token,
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": address.rsplit(":", 1)[1],
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_served(process, f"http://{address}/metrics", token, log)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_served(process: subprocess.Popen[bytes], url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while True:
        assert process.poll() is None, f"the worker exited:\n{log.read_text()}"
        try:
            answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the worker serves no metrics:\n{log.read_text()}"
        time.sleep(0.2)
