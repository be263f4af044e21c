"""What the commands share: the settings read from the environment, and a runtime built for one
piece of work and stopped after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.bootstrap import build_runtime, create_consumer_groups
from app.core import migrations
from app.core.config import Settings
from app.core.logging import configure_logging
from app.runtime import Runtime


def load_settings() -> Settings:
    """The process's settings from its environment, with logging set up as they say."""
    settings = Settings()
    configure_logging(settings)
    return settings


async def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Any]]) -> Any:
    runtime = build_runtime(settings)
    try:
        return await work(runtime)
    finally:
        await runtime.stop()


async def migrate_hosted(runtime: Runtime) -> None:
    """Roles, schemas and migrations of the hosted modules (app/core/db_roles.py), then the
    consumer groups of the Redis Streams transport."""
    settings = runtime.settings
    logins = {module: settings.module_database_url(module) for module in settings.app_modules}
    await migrations.migrate(settings.require_database_url(), logins)
    await create_consumer_groups(runtime)


async def migrate_and_seed(runtime: Runtime) -> list[Any]:
    from app.seed import seed

    await migrate_hosted(runtime)
    return await seed(runtime)
