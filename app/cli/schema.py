"""The release step and what reads or fills the modules' schemas: `migrate`, `seed`,
`dead-letters`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import click

from app.cli.runtime import load_settings, migrate_and_seed, migrate_hosted, with_runtime
from app.core.events.bus import dead_letters as inbox_dead_letters
from app.core.events.streams import stream_dead_letters
from app.runtime import Runtime


@click.command()
def migrate() -> None:
    """Upgrade every module's schema to its head.

    The release step: roles, grants and migrations of the hosted modules; over Redis Streams,
    their consumer groups too, at 0, so nothing published before their first start is missed."""
    settings = load_settings()
    asyncio.run(with_runtime(settings, migrate_hosted))
    print("migrated:", ", ".join(settings.app_modules))


@click.command()
def seed() -> None:
    """Migrate, then add the demo data (idempotent)."""
    asyncio.run(with_runtime(load_settings(), migrate_and_seed))
    print("demo data in place")


@click.command("dead-letters")
def dead_letters() -> None:
    """List the event deliveries that gave up.

    One JSON object a line: the inboxes' (a handler gave up), then, over Redis Streams, the
    entries a consumer group gave up on ("source": "stream")."""
    asyncio.run(with_runtime(load_settings(), _print_dead_letters))


async def _print_dead_letters(runtime: Runtime) -> None:
    for module in runtime.modules:
        for letter in await inbox_dead_letters(module.uow):
            print(json.dumps({"module": module.name, **asdict(letter)}, default=str))
    if runtime.consumers is None:
        return
    for consumer in runtime.consumers.consumers:
        for entry in await stream_dead_letters(runtime.core.redis(), consumer.group):
            print(json.dumps({"source": "stream", **asdict(entry)}))
