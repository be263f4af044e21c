"""The relay under concurrency, on real Postgres: several relays share one outbox without a
handler seeing an event twice, an aggregate's events arrive in the order raised, a crashed
relay's claim is taken over once its lease runs out, a failing handler holds back only the
events that must wait for it, and a commit in another process wakes a relay at once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from app.bootstrap import build_runtime, truncate_all
from app.core.config import Settings
from app.core.events.base import IntegrationEvent
from app.core.events.bus import Subscription, dead_letters
from app.core.events.outbox import Transaction
from app.core.events.relay import EventRelay, OutboxSource
from app.runtime import Runtime
from tests.conftest import Servers, eventually, make_settings
from tests.databases import operator_database

AGGREGATES = 200
STEPS = 10  # 2,000 events in all


class StepTaken(IntegrationEvent):
    event_type: ClassVar[str] = "tests.StepTaken"
    ordered_by: ClassVar[str | None] = "aggregate_id"

    aggregate_id: UUID
    step: int


class Blocked(IntegrationEvent):
    """Delivered to a subscriber that never answers: the relay holding it has hung."""

    event_type: ClassVar[str] = "tests.Blocked"


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    """A database of its own: no other relay may deliver these tests' events."""
    url = await servers.migrated_database("keystone_relay")
    return make_settings(url, servers.redis_url, event_max_attempts=2, event_retry_base_s=0)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    await truncate_all(runtime)
    yield runtime
    await runtime.stop()


def relay(runtime: Runtime, name: str, *, lease_s: float = 30.0) -> EventRelay:
    """Another relay on the same outbox, as another process (API or worker) would run."""
    catalog = runtime.module("catalog")
    return EventRelay(
        runtime.core.bus(),
        [OutboxSource("catalog", catalog.uow.database, catalog.uow.outbox)],
        runtime.core.outbox_signal(),
        batch_size=32,  # not a multiple of STEPS: batches split aggregates between relays
        poll_interval_s=0.05,
        retry_base_s=0,
        lease_s=lease_s,
        concurrency=4,
        name=name,
    )


def record_steps(runtime: Runtime, name: str, seen: list[tuple[UUID, int]]) -> None:
    async def handle(event: StepTaken, tx: Transaction) -> None:
        await tx.session.execute(text("SELECT 1"))  # a round trip: let other deliveries interleave
        seen.append((event.aggregate_id, event.step))

    uow = runtime.module("catalog").uow
    runtime.core.bus().subscribe(Subscription(StepTaken, name, handle, uow))


async def undelivered(runtime: Runtime) -> int:
    async with operator_database(runtime).session() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM catalog.outbox WHERE dispatched_at IS NULL")
        )
    return int(count or 0)


async def test_relays_share_thousands_of_events_once_each_and_in_order_per_aggregate(
    runtime: Runtime,
) -> None:
    first: list[tuple[UUID, int]] = []
    second: list[tuple[UUID, int]] = []
    record_steps(runtime, "tests.first", first)
    record_steps(runtime, "tests.second", second)
    relays = [relay(runtime, f"relay-{n}") for n in range(3)]
    aggregates = [uuid4() for _ in range(AGGREGATES)]
    publishing = True

    async def keep_relaying(one: EventRelay) -> None:
        while publishing or await undelivered(runtime):
            await one.run_once()

    tasks = [asyncio.create_task(keep_relaying(one)) for one in relays]
    for start in range(0, AGGREGATES, 20):  # committed while the relays run
        async with runtime.module("catalog").uow.begin() as tx:
            for aggregate in aggregates[start : start + 20]:
                for step in range(STEPS):
                    tx.publish(StepTaken(aggregate_id=aggregate, step=step))
    publishing = False
    await asyncio.wait_for(asyncio.gather(*tasks), 300)

    for seen in (first, second):
        assert len(seen) == len(set(seen)) == AGGREGATES * STEPS  # each once, none lost
        per_aggregate: dict[UUID, list[int]] = defaultdict(list)
        for aggregate, step in seen:
            per_aggregate[aggregate].append(step)
        assert all(steps == list(range(STEPS)) for steps in per_aggregate.values())


async def test_a_crashed_relays_claim_is_taken_over_after_its_lease(runtime: Runtime) -> None:
    hung = asyncio.Event()

    async def never_answers(_: Blocked, __: Transaction) -> None:
        hung.set()
        await asyncio.Event().wait()

    uow = runtime.module("catalog").uow
    runtime.core.bus().subscribe(Subscription(Blocked, "tests.hangs", never_answers, uow))
    async with uow.begin() as tx:
        tx.publish(Blocked())
    crashed = relay(runtime, "crashed", lease_s=1.0)
    task = asyncio.create_task(crashed.run_once())
    await asyncio.wait_for(hung.wait(), 30)
    task.cancel()  # the process dies mid-delivery: its claim is never released
    await asyncio.gather(task, return_exceptions=True)

    survivor: list[str] = []

    async def answers(event: Blocked, _: Transaction) -> None:
        survivor.append(str(event.event_id))

    runtime.core.bus()._subscriptions[Blocked] = [
        Subscription(Blocked, "tests.hangs", answers, uow)
    ]
    other = relay(runtime, "survivor")
    assert await other.run_once() == 0  # still under the crashed relay's lease

    async def taken_over() -> bool:
        return await other.run_once() == 1

    await eventually(taken_over, timeout_s=30, interval_s=0.2)
    assert len(survivor) == 1
    assert await undelivered(runtime) == 0


async def test_a_failing_handler_holds_back_only_its_aggregates_later_events(
    runtime: Runtime,
) -> None:
    stuck, free = uuid4(), uuid4()
    seen: list[tuple[UUID, int]] = []

    async def fails_on_first_step(event: StepTaken, tx: Transaction) -> None:
        if event.aggregate_id == stuck and event.step == 0:
            raise ValueError("cannot cope with step 0")
        seen.append((event.aggregate_id, event.step))

    uow = runtime.module("catalog").uow
    runtime.core.bus().subscribe(Subscription(StepTaken, "tests.picky", fails_on_first_step, uow))
    async with uow.begin() as tx:
        for step in range(2):
            tx.publish(StepTaken(aggregate_id=stuck, step=step))
            tx.publish(StepTaken(aggregate_id=free, step=step))
    one = relay(runtime, "only")

    await one.run_once()
    assert seen == [(free, 0), (free, 1)]  # the other aggregate went through at once

    while await undelivered(runtime):  # event_max_attempts=2: then dead-lettered, and on
        await one.run_once()
    assert seen[2:] == [(stuck, 1)]
    [letter] = await dead_letters(uow)
    assert (letter.handler, letter.attempts) == ("tests.picky", 2)


async def test_a_commit_in_another_process_wakes_the_relay_without_a_poll(
    settings: Settings,
) -> None:
    quiet = settings.model_copy(update={"outbox_poll_interval_s": 3600.0})
    listening = build_runtime(quiet)
    await truncate_all(listening)
    seen: list[tuple[UUID, int]] = []
    record_steps(listening, "tests.woken", seen)
    listening.start_relay()
    elsewhere = build_runtime(quiet)  # its commits do not reach the listening relay's signal
    try:
        await asyncio.sleep(1)  # the first pass is over; only a NOTIFY can wake it now
        aggregate = uuid4()
        async with elsewhere.module("catalog").uow.begin() as tx:
            tx.publish(StepTaken(aggregate_id=aggregate, step=0))

        async def delivered() -> bool:
            return seen == [(aggregate, 0)]

        await eventually(delivered, timeout_s=60)
    finally:
        await elsewhere.stop()
        await listening.stop()


class Nudge(IntegrationEvent):
    """An event nobody handles, written only to wake the relays."""

    event_type: ClassVar[str] = "tests.Nudge"


async def test_a_retry_is_delivered_while_commits_to_another_outbox_keep_waking_the_relay(
    settings: Settings,
) -> None:
    """A wake-up passes over the outboxes its commit named; at least every poll interval a pass
    goes over all of them, so a retry waiting in a quiet outbox is not starved by busy ones."""
    # The retry is due a second after the failure, long after its commit's wake-ups were spent.
    quiet_catalog = {"outbox_poll_interval_s": 0.5, "event_retry_base_s": 1.0}
    busy = build_runtime(settings.model_copy(update=quiet_catalog))
    await truncate_all(busy)
    attempts: list[int] = []

    async def fails_once(event: StepTaken, tx: Transaction) -> None:
        attempts.append(event.step)
        if len(attempts) == 1:
            raise ValueError("not this time")

    catalog = busy.module("catalog").uow
    busy.core.bus().subscribe(Subscription(StepTaken, "tests.fails-once", fails_once, catalog))
    busy.start_relay()
    stop_nudging = asyncio.Event()

    async def nudge_users_outbox() -> None:  # a wake-up every 50 ms, none naming catalog
        while not stop_nudging.is_set():
            async with busy.module("users").uow.begin() as tx:
                tx.publish(Nudge())
            await asyncio.sleep(0.05)

    nudging = asyncio.create_task(nudge_users_outbox())
    try:
        async with catalog.begin() as tx:
            tx.publish(StepTaken(aggregate_id=uuid4(), step=7))

        async def retried() -> bool:
            return attempts == [7, 7]

        await eventually(retried, timeout_s=30)
        assert not nudging.done()  # the wake-ups went on all along
    finally:
        stop_nudging.set()
        await nudging
        await busy.stop()
