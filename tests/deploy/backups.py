"""For the backup image's tests (in test_image.py, so one worker builds the images once): a
PostgreSQL server of the backup image's client major (Debian's, in a container: the suite's own
server is newer than that client accepts), the prod CronJob's command, and the volumes the
CronJob's pod mounts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

from app.core.security.ed25519 import new_signing_key, private_pem
from devtools.servers import free_port, start_redis
from tests.conftest import Servers
from tests.deploy.images import Containers
from tests.deploy.test_kubernetes import container, find, render

CLIENT_MAJOR = 15  # Debian bookworm's postgresql-client: the stand-in base's release
START_TIMEOUT_S = 60


def backup_command() -> list[str]:
    """The prod CronJob's command, as rendered."""
    cron = find(render("prod"), "CronJob", "keystone-backup")
    command: list[str] = container(cron["spec"]["jobTemplate"])["command"]
    return command


@contextmanager
def debian_postgres(containers: Containers, scratch: Path) -> Iterator[Servers]:
    """Debian's PostgreSQL server in a container on a free port (and a Redis of its own, for
    what `seed` publishes), as the suite's `Servers`."""
    image = containers.debian_postgres(containers.standin_base())
    port = free_port()
    name = f"keystone-postgres-{uuid4().hex[:8]}"
    server = "/usr/lib/postgresql/*/bin"
    script = (
        f"{server}/initdb -D /tmp/data -U postgres --auth=trust >/dev/null && exec "
        f"{server}/postgres -D /tmp/data -p {port} -c listen_addresses=127.0.0.1 -k /tmp"
    )
    containers.run("--detach", "--name", name, "--user", "postgres", image, "sh", "-c", script)
    redis = start_redis(scratch / "redis", persist=False)
    try:
        _wait_until_accepting(containers, name, port)
        yield Servers(f"postgresql://postgres@127.0.0.1:{port}/postgres", redis.url)
    finally:
        redis.stop()
        containers.podman("rm", "--force", "--time", "0", name)


def _wait_until_accepting(containers: Containers, name: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    probe = containers.podman_cmd("exec", name, "pg_isready", "-h", "127.0.0.1", "-p", str(port))
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        assert time.monotonic() < deadline, containers.podman("logs", name)[-3000:]
        time.sleep(0.3)


def secrets_for(folder: Path, database_url: str) -> Path:
    """The secrets as files, as the CronJob mounts them: the operator's login and a key."""
    folder.mkdir()
    (folder / "database_url").write_text(database_url + "\n")
    (folder / "jwt_private_key").write_text(private_pem(new_signing_key()))
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def writable_volume(folder: Path) -> Path:
    """The backups volume; the image's user (10001) writes there, as fsGroup lets it."""
    folder.mkdir()
    folder.chmod(0o777)
    return folder
