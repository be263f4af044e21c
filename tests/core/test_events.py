"""The outbox, the relay and the inbox, on real Postgres: atomic, at-least-once, idempotent,
and a handler that keeps failing ends as a visible dead letter without blocking the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, update

from app.bootstrap import build_runtime, truncate_all
from app.core.config import Settings
from app.core.context import request_id_var
from app.core.events.base import IntegrationEvent
from app.core.events.bus import RepeatableSubscription, Subscription, dead_letters
from app.core.events.outbox import Transaction
from app.modules.catalog.models import Category
from app.runtime import Runtime
from tests.conftest import Servers, make_settings
from tests.databases import operator_database


class SomethingHappened(IntegrationEvent):
    event_type: ClassVar[str] = "tests.SomethingHappened"

    label: str


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    """A database of its own: the shared app's relay must not deliver these tests' events."""
    url = await servers.migrated_database("keystone_events")
    return make_settings(url, servers.redis_url, event_max_attempts=3)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime whose relay the test drives (`relay.run_once()`); no background task."""
    runtime = build_runtime(settings)
    await truncate_all(runtime)
    yield runtime
    await runtime.stop()


def catalog_uow(runtime: Runtime):  # type: ignore[no-untyped-def]
    return runtime.module("catalog").uow


async def outbox_rows(runtime: Runtime) -> list[tuple[str, object]]:
    outbox = catalog_uow(runtime).outbox
    async with operator_database(runtime).session() as session:
        rows = await session.execute(select(outbox.c.event_type, outbox.c.dispatched_at))
        return [tuple(row) for row in rows]


async def categories(runtime: Runtime) -> int:
    async with operator_database(runtime).session() as session:
        return int(await session.scalar(select(func.count()).select_from(Category)) or 0)


async def test_event_and_state_change_commit_together(runtime: Runtime) -> None:
    async with catalog_uow(runtime).begin() as tx:
        tx.session.add(Category(name="Tea"))
        tx.publish(SomethingHappened(label="tea added"))
    assert await categories(runtime) == 1
    assert [row[0] for row in await outbox_rows(runtime)] == ["tests.SomethingHappened"]


async def test_a_failed_use_case_leaves_neither_state_nor_event(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with catalog_uow(runtime).begin() as tx:
            tx.session.add(Category(name="Tea"))
            tx.publish(SomethingHappened(label="tea added"))
            raise RuntimeError("business rule broke after the write")
    assert await categories(runtime) == 0
    assert await outbox_rows(runtime) == []


def subscribe_recorder(runtime: Runtime, name: str, seen: list[UUID], fail: bool = False) -> None:
    uow = catalog_uow(runtime)

    async def handle(event: SomethingHappened, tx: Transaction) -> None:
        tx.session.add(Category(name=f"{name}-{event.event_id}"))
        if fail:
            raise ValueError(f"{name} cannot cope")
        seen.append(event.event_id)

    runtime.core.bus().subscribe(Subscription(SomethingHappened, name, handle, uow))


async def test_committed_event_is_delivered_by_a_later_process(
    runtime: Runtime, settings: Settings
) -> None:
    async with catalog_uow(runtime).begin() as tx:
        tx.publish(SomethingHappened(label="before the crash"))
    await runtime.stop()  # the process dies before its relay ran

    restarted = build_runtime(settings)
    seen: list[UUID] = []
    subscribe_recorder(restarted, "tests.after_restart", seen)
    try:
        assert await restarted.relay.run_once() == 1
        assert len(seen) == 1
        assert [row[1] is not None for row in await outbox_rows(restarted)] == [True]
    finally:
        await restarted.stop()


async def test_redelivery_runs_the_handler_effect_once(runtime: Runtime) -> None:
    seen: list[UUID] = []
    subscribe_recorder(runtime, "tests.once", seen)
    event = SomethingHappened(label="twice")
    assert await runtime.core.bus().deliver(event)
    assert await runtime.core.bus().deliver(event)  # e.g. the relay crashed before marking it
    assert seen == [event.event_id]
    assert await categories(runtime) == 1


async def test_failing_handler_is_dead_lettered_and_others_still_run(runtime: Runtime) -> None:
    healthy: list[UUID] = []
    subscribe_recorder(runtime, "tests.healthy", healthy)
    subscribe_recorder(runtime, "tests.broken", [], fail=True)
    async with catalog_uow(runtime).begin() as tx:
        tx.publish(SomethingHappened(label="poison for one handler"))
        tx.publish(SomethingHappened(label="another"))

    for _ in range(3):  # event_max_attempts
        await runtime.relay.run_once()

    assert len(healthy) == 2  # the healthy handler got both, on the first pass
    assert await categories(runtime) == 2  # the broken handler's writes were rolled back
    letters = await dead_letters(catalog_uow(runtime))
    assert {letter.handler for letter in letters} == {"tests.broken"}
    assert len(letters) == 2
    assert all(letter.attempts == 3 for letter in letters)
    assert all(letter.last_error == "ValueError: tests.broken cannot cope" for letter in letters)
    assert all(row[1] is not None for row in await outbox_rows(runtime))  # settled, not stuck


async def test_a_repeatable_handler_keeps_no_inbox_row_and_is_run_again_until_it_succeeds(
    runtime: Runtime,
) -> None:
    recorded: list[UUID] = []
    subscribe_recorder(runtime, "tests.recorded", recorded)
    dropped: list[UUID] = []

    async def drop_cache_entry(event: SomethingHappened) -> None:
        dropped.append(event.event_id)
        if len(dropped) == 1:
            raise ConnectionError("cache unreachable")

    runtime.core.bus().subscribe(
        RepeatableSubscription(SomethingHappened, "tests.drop_cache_entry", drop_cache_entry)
    )
    async with catalog_uow(runtime).begin() as tx:
        tx.publish(SomethingHappened(label="cached somewhere"))

    assert await runtime.relay.run_once() == 0  # the cache failed: the event stays owed
    assert [row[1] for row in await outbox_rows(runtime)] == [None]
    outbox = catalog_uow(runtime).outbox
    async with operator_database(runtime).session() as session:  # its backoff, skipped
        await session.execute(update(outbox).values(next_attempt_at=func.now()))
    assert await runtime.relay.run_once() == 1

    assert len(dropped) == 2  # run again,
    assert len(set(dropped)) == 1  # for the same event
    assert recorded == dropped[:1]  # the inbox handler took effect once
    inbox = catalog_uow(runtime).inbox
    async with operator_database(runtime).session() as session:
        handlers = set(await session.scalars(select(inbox.c.handler)))
    assert handlers == {"tests.recorded"}
    assert [row[1] is not None for row in await outbox_rows(runtime)] == [True]


async def test_events_carry_the_request_id_as_correlation_id(runtime: Runtime) -> None:
    token = request_id_var.set("req-42")
    try:
        event = SomethingHappened(label="correlated")
    finally:
        request_id_var.reset(token)
    assert event.correlation_id == "req-42"
    assert SomethingHappened(label="no request").correlation_id is None


def test_event_types_cannot_be_declared_twice() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class SomethingHappenedAgain(IntegrationEvent):
            event_type: ClassVar[str] = "tests.SomethingHappened"


def test_events_reject_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        SomethingHappened.model_validate({"label": "x", "surprise": 1, "event_id": str(uuid4())})


async def test_an_unreadable_outbox_row_does_not_block_the_others(runtime: Runtime) -> None:
    seen: list[UUID] = []
    subscribe_recorder(runtime, "tests.readable", seen)
    outbox = catalog_uow(runtime).outbox
    async with operator_database(runtime).session() as session:
        await session.execute(
            outbox.insert().values(
                event_id=uuid4(),
                event_type=SomethingHappened.event_type,
                event_version=1,
                payload={"written by": "a release with another schema"},
                occurred_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
    async with catalog_uow(runtime).begin() as tx:
        tx.publish(SomethingHappened(label="fine"))

    assert await runtime.relay.run_once() == 1
    assert len(seen) == 1
    async with operator_database(runtime).session() as session:
        stuck = (
            await session.execute(
                select(outbox.c.attempts, outbox.c.last_error).where(
                    outbox.c.dispatched_at.is_(None)
                )
            )
        ).one()
    assert stuck.attempts == 1
    assert stuck.last_error.startswith("ValidationError")


async def test_a_partial_process_leaves_events_for_a_full_one(
    runtime: Runtime, settings: Settings
) -> None:
    # orders is "served elsewhere" (nothing is called): users' export would ask it over HTTP.
    # In process (a partial process defaults to Redis Streams, tests/core/test_event_streams.py).
    elsewhere = {
        "app_modules": ["users", "catalog"],
        "orders_url": "http://127.0.0.1:9",
        "event_transport": "inprocess",
    }
    partial = build_runtime(settings.model_copy(update=elsewhere))
    await partial.start()
    try:
        assert not partial.relays_events
        async with partial.module("catalog").uow.begin() as tx:
            tx.publish(SomethingHappened(label="for a module mounted elsewhere"))
        await asyncio.sleep(settings.outbox_poll_interval_s * 3)
        assert [row[1] for row in await outbox_rows(runtime)] == [None]  # still undelivered
    finally:
        await partial.stop()

    seen: list[UUID] = []
    subscribe_recorder(runtime, "tests.full_process", seen)
    assert await runtime.relay.run_once() == 1
    assert len(seen) == 1
