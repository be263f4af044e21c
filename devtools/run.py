"""`make run` (`python -m devtools run`): embedded servers unless given some, migrations, demo
data, then the monolith (or, `--split`, devtools/split.py) until a signal stops it all."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.cli.runtime import migrate_and_seed, with_runtime
from app.core.config import Settings
from app.core.logging import configure_logging
from app.seed import DemoDataError
from devtools.supervisor import DevStack, Interrupted, terminal_foreground

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("KEYSTONE_DATA_DIR", ROOT / ".data"))
DEV_DATABASE = "keystone"


def run_dev(split: bool = False) -> None:
    """Exit 0 once stopped by a signal; 1 when a child died on its own (or, split, a service
    could not start); 2 when the demo data cannot be made (one line saying why)."""
    stack = DevStack()
    stack.install_signal_handlers()
    failure: str | None = None
    with terminal_foreground():
        try:
            stack.start_watchdog()
            failure = _run(stack, split)
        except Interrupted:
            print("\nstopping...", flush=True)
        except (DemoDataError, RuntimeError) as error:
            failure = str(error)
        finally:
            stack.stop()
    if failure is not None:
        print(failure, file=sys.stderr)
        sys.exit(2 if failure.startswith(DemoDataError.prefix) else 1)


def _run(stack: DevStack, split: bool) -> str:
    database_url, redis_url = _urls(stack)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # Jobs in flight get a short grace in dev: Ctrl-C should not wait 20 s.
        "WORKER_SHUTDOWN_GRACE_S": os.environ.get("WORKER_SHUTDOWN_GRACE_S", "3"),
        **_mail(stack),
    }
    logins = _module_logins(database_url)
    env.update(logins)
    # Split: migrating as a Redis Streams process also creates every module's consumer groups.
    streams: dict[str, Any] = {"event_transport": "redis-streams"} if split else {}
    settings = Settings(database_url=database_url, redis_url=redis_url, **streams).model_copy(
        update={name.lower(): url for name, url in logins.items()}
    )
    configure_logging(settings)
    accounts = asyncio.run(with_runtime(settings, migrate_and_seed))
    port = os.environ.get("PORT", "8000")
    if split:
        from devtools.split import start_split

        start_split(stack, env, port, DATA_DIR)
    else:
        _spawn_monolith(stack, env, port)
    _print_banner(port, accounts, split)
    while all(process.poll() is None for process in stack.processes):
        time.sleep(0.5)
    return "a child process exited; everything was stopped"


def _urls(stack: DevStack) -> tuple[str, str]:
    from devtools.servers import start_postgres, start_redis

    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url:
        stack.tell_watchdog("postgres", str(DATA_DIR / "postgres"))  # even if killed starting it
        postgres = start_postgres(DATA_DIR / "postgres")
        stack.stoppers.append(postgres.stop)
        postgres.create_database(DEV_DATABASE)
        database_url = postgres.url(DEV_DATABASE)
        print(f"embedded Postgres: {DATA_DIR / 'postgres'}")
    if not redis_url:
        redis = start_redis(DATA_DIR / "redis")
        stack.stoppers.append(redis.stop)
        stack.tell_watchdog("group", redis.process.pid)
        redis_url = redis.url
        print(f"embedded Redis:    {redis_url} (data in {DATA_DIR / 'redis'})")
    return database_url, redis_url


def _module_logins(database_url: str) -> dict[str, str]:
    """Each module connects with its own login, as in production (app/core/db_roles.py), unless
    its <MODULE>_DATABASE_URL is set; `migrate` makes the roles. Without a password, which a
    local Postgres trusting its own connections (the embedded one) does not ask for."""
    from app.core.config import ALL_MODULES
    from app.core.db_roles import login_url

    if make_url(database_url).password:
        return {}  # a server that asks for passwords: the modules share DATABASE_URL's login
    variables = {f"{module.upper()}_DATABASE_URL": module for module in ALL_MODULES}
    return {
        name: login_url(database_url, module)
        for name, module in variables.items()
        if not os.environ.get(name)
    }


def _mail(stack: DevStack) -> dict[str, str]:
    """Unless SMTP_HOST is set, emails (verification, password resets) go to a local sink that
    prints them."""
    if os.environ.get("SMTP_HOST"):
        return {}
    from devtools.servers import start_mail_sink

    sink = start_mail_sink(DATA_DIR / "mail")
    stack.stoppers.append(sink.stop)
    print(f"local SMTP sink:   127.0.0.1:{sink.port} (emails printed here and kept in .data/mail)")
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none"}


def _spawn_monolith(stack: DevStack, env: dict[str, str], port: str) -> None:
    python = sys.executable
    stack.spawn(
        [
            *(python, "-m", "uvicorn", "app.main:app", "--reload", "--reload-dir", "app"),
            *("--host", "127.0.0.1", "--port", port, "--no-access-log"),
            # TRUSTED_PROXIES decides whom X-Forwarded-* are believed from, not uvicorn.
            "--no-proxy-headers",
        ],
        env,
    )
    stack.spawn([python, "-m", "app.cli", "worker"], env)


def _print_banner(port: str, accounts: list[Any], split: bool) -> None:
    base = f"http://127.0.0.1:{port}"
    health = f"{base}/healthz (the gateway's; /readyz on each service's port)"
    lines = [
        "",
        "Keystone is running"
        + (" split: three services behind nginx" if split else "")
        + " (Ctrl-C stops everything)",
        f"  API         {base}/api/v1",
        f"  Swagger UI  {base}/docs",
        f"  Health      {health if split else f'{base}/healthz  {base}/readyz'}",
        "  Demo accounts (email / password / role):",
        *(f"    {a.email} / {a.password} / {a.role}" for a in accounts),
        "",
    ]
    print("\n".join(lines), flush=True)
