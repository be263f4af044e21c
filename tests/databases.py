"""The database as the tests see it: each module of an app under test connects with its own
login (app/core/db_roles.py), exactly as in production; the tests' own assertions read across
schemas as the operator (DATABASE_URL), which no app process does."""

from __future__ import annotations

from app.core.config import ALL_MODULES, Settings
from app.core.db import Database
from app.core.db_roles import login_url
from app.runtime import Runtime

_opened: dict[str, Database] = {}


def module_logins(operator_url: str) -> dict[str, str]:
    """Every module's own login on the operator's database (trusted locally: no password)."""
    return {module: login_url(operator_url, module) for module in ALL_MODULES}


def module_login_settings(operator_url: str) -> dict[str, str]:
    """`users_database_url=...` and the others, for `Settings`."""
    return {f"{m}_database_url": url for m, url in module_logins(operator_url).items()}


def database_env(settings: Settings) -> dict[str, str]:
    """DATABASE_URL and every <MODULE>_DATABASE_URL, for a process the test starts."""
    env = {"DATABASE_URL": settings.require_database_url()}
    for module in ALL_MODULES:
        env[f"{module.upper()}_DATABASE_URL"] = settings.module_database_url(module)
    return env


def operator_database(runtime: Runtime) -> Database:
    """The operator's view of the runtime's database, for a test to look at any schema."""
    url = runtime.settings.require_database_url()
    if url not in _opened:
        _opened[url] = Database(runtime.settings, url)
    return _opened[url]


async def close_operator_databases() -> None:
    opened = list(_opened.values())
    _opened.clear()
    for database in opened:
        await database.dispose()


def module_login_env(operator_url: str) -> dict[str, str]:
    """USERS_DATABASE_URL=... and the others, for a process the test starts."""
    return {f"{m.upper()}_DATABASE_URL": url for m, url in module_logins(operator_url).items()}
