"""The README's run command, end to end: `python -m devtools run` (what `make run` calls) starts
embedded Postgres and Redis, migrates, seeds, serves the API and the worker, keeps its data
across restarts, and Ctrl-C, SIGTERM and SIGHUP stop everything it started (exit 0); a SIGKILLed
runner's watchdog stops it all too; `make run` itself exits 0 after Ctrl-C at a terminal. Also
the worker's command lines, and the CLI's refusals (a weak seed password, `create-admin`
with the password on the command line)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from devtools.servers import free_port
from tests.conftest import Servers
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
ADMIN = {"username": "boss@example.org", "password": "chosen-by-the-operator"}
STOP_TIMEOUT_S = 20
START_TIMEOUT_S = 180  # a cold start (initdb, imports) on a loaded 2-core machine


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        KEYSTONE_DATA_DIR=str(data_dir),
        PORT=str(port),
        SEED_ADMIN_EMAIL=ADMIN["username"],
        SEED_ADMIN_PASSWORD=ADMIN["password"],
    )
    env.update(extra)
    return env


@contextmanager
def dev_stack(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools", "run"],
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


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def empty_queues(servers: Servers) -> str:
    """A Redis database no other test queues jobs in: a burst worker runs until its queue is
    empty, deferred jobs included, so another test's expiry job deferred for minutes would
    keep it running."""
    url = servers.redis_database(2)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.mark.usefixtures("database_url")
def test_arq_command_line_runs_the_worker_of_one_module(
    empty_queues: str, database_url: str
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": empty_queues,
        "WORKER_MODULES": "orders",
        # Served elsewhere (nothing is called here).
        "CATALOG_URL": "http://127.0.0.1:9",
        "USERS_URL": "http://127.0.0.1:9",
        "SERVICE_TOKEN": "tests-only-service-credential-0123456789abcdef",
    }
    result = _run(["arq", "app.worker.WorkerSettings", "--burst"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "orders.expire_order" in result.stdout + result.stderr
    assert "users.send_password_reset" not in result.stdout + result.stderr

    # Several modules are several queues: arq's command line runs one, `app.cli worker` all.
    env["WORKER_MODULES"] = "orders,users"
    refused = _run(["arq", "app.worker.WorkerSettings", "--burst"], env)
    assert refused.returncode != 0
    assert "run `python -m app.cli worker`" in refused.stdout + refused.stderr


@pytest.mark.usefixtures("database_url")
def test_the_worker_command_runs_every_hosted_modules_queue(
    empty_queues: str, database_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": empty_queues}
    result = _run(["app.cli", "worker", "--burst"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    for queue in ("keystone:users", "keystone:catalog", "keystone:orders"):
        assert queue in result.stdout + result.stderr


def _spawn_dev(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "devtools", "run"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, as a terminal's job would be
        )


def _wait_ready_logged(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dev stack exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"dev stack did not become ready:\n{log.read_text()}")


def _everything_it_started(runner: int) -> list[psutil.Process]:
    """The runner's processes: the API (reloader and server), the worker, Redis, the watchdog.
    Postgres is started by `pg_ctl`, which detaches it: it is checked by its pid file."""
    started = psutil.Process(runner).children(recursive=True)
    commands = [" ".join(process.cmdline()) for process in started]
    assert any("uvicorn" in command for command in commands), commands
    assert any("app.cli worker" in command for command in commands), commands
    assert any("redis-server" in command for command in commands), commands
    assert any("devtools.watchdog" in command for command in commands), commands
    return started


def _still_running(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return alive


def _all_gone(processes: list[psutil.Process], data_dir: Path, port: int) -> bool:
    return not (_still_running(processes) or _postgres_running(data_dir) or _port_open(port))


@pytest.fixture(scope="module")
def dev_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the stop tests: Postgres is initialised once, not per test."""
    return tmp_path_factory.mktemp("dev-stop")


@pytest.mark.parametrize(
    ("stop", "signum"),
    [
        ("a process manager or `timeout`: the runner alone", signal.SIGTERM),
        ("a closed terminal: its whole group", signal.SIGHUP),
    ],
)
def test_a_stop_signal_stops_every_child_and_the_runner_exits_0(
    dev_data: Path, stop: str, signum: signal.Signals
) -> None:
    port = free_port()
    log = dev_data / f"{signum.name}.log"
    process = _spawn_dev(_env(dev_data, port), log)
    try:
        _wait_ready_logged(f"http://127.0.0.1:{port}", process, log)
        started = _everything_it_started(process.pid)
        if signum == signal.SIGHUP:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
        assert _still_running(started) == []
        assert not _postgres_running(dev_data)
        assert not _port_open(port)
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_killed_runners_children_are_stopped_by_its_watchdog(dev_data: Path) -> None:
    port = free_port()
    log = dev_data / "SIGKILL.log"
    process = _spawn_dev(_env(dev_data, port), log)
    started: list[psutil.Process] = []
    try:
        _wait_ready_logged(f"http://127.0.0.1:{port}", process, log)
        started = psutil.Process(process.pid).children(recursive=True)
        _everything_it_started(process.pid)

        process.kill()  # nothing of the runner runs: no handler, no finally
        process.wait()

        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not _all_gone(started, dev_data, port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _still_running(started) == []
        assert not _postgres_running(dev_data)
        assert not _port_open(port)
    finally:  # a failed run must not leave a dev stack running on the machine
        _kill_all([psutil.Process(process.pid), *started] if process.poll() is None else started)
        postmaster = dev_data / "postgres" / "postmaster.pid"
        if postmaster.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def test_make_run_exits_0_after_ctrl_c_at_a_terminal(
    tmp_path: Path, servers: Servers, database_url: str
) -> None:
    """At a terminal Ctrl-C is sent to the whole foreground group: make and uv too, which die
    of it (exit 130) unless the runner took the terminal's foreground for itself."""
    import pty

    require_tool("make", "make")
    port = free_port()
    env = _env(tmp_path, port, DATABASE_URL=database_url, REDIS_URL=servers.redis_database(5))
    # A new session whose controlling terminal is the pty, as a shell in a terminal starts make.
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execvpe("make", ["make", "--no-print-directory", "run"], env)  # noqa: S606
    output = bytearray()
    try:
        _read_until(terminal, output, b"Keystone is running", timeout_s=START_TIMEOUT_S)
        _read_until(terminal, output, b"Application startup complete", timeout_s=START_TIMEOUT_S)
        os.write(terminal, b"\x03")  # Ctrl-C
        _, status = _wait_pid(pid, output, terminal)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    assert not _port_open(port)


def _read_until(terminal: int, output: bytearray, marker: bytes, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while marker not in output:
        if time.monotonic() > deadline:
            raise AssertionError(output.decode(errors="replace")[-3000:])
        ready, _, _ = select.select([terminal], [], [], 0.5)
        if ready:
            try:
                output.extend(os.read(terminal, 65536))
            except OSError:  # the terminal's last user closed it
                raise AssertionError(output.decode(errors="replace")[-3000:]) from None


def _wait_pid(pid: int, output: bytearray, terminal: int) -> tuple[int, int]:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return done, status
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if ready:
            with contextlib.suppress(OSError):
                output.extend(os.read(terminal, 65536))
    raise AssertionError("make did not exit:\n" + output.decode(errors="replace")[-3000:])


async def test_a_weak_seed_admin_password_is_one_line_naming_the_rule_and_the_variable(
    tmp_path: Path, servers: Servers
) -> None:
    database_url = await servers.recreate_database("keystone_dev_weak_seed")
    env = _env(
        tmp_path,
        free_port(),
        DATABASE_URL=database_url,
        REDIS_URL=servers.redis_database(5),
        SEED_ADMIN_PASSWORD="aaaaaaaaaaaa",
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "devtools", "run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # One line of ours (a library may warn about the machine, e.g. XDG_RUNTIME_DIR unset).
    [line] = [line for line in result.stderr.splitlines() if "seed" in line]
    assert line.startswith("cannot seed the demo data: SEED_ADMIN_PASSWORD ")
    assert "password-repetitive" in line
