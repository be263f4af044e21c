"""Integration events over Redis Streams, for modules hosted in different processes.

One stream per publishing module (`keystone:events:<module>`), written by that module's relay;
one consumer group per subscribing module, named after it, on each stream it reads
(app/core/events/consumer.py). Groups are created at `0` in the release step (`python -m
app.cli migrate`), so an event published before a subscriber first starts is still read by it,
and a stream is trimmed only below the oldest entry some group has not acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.core import tracing
from app.core.events.base import IntegrationEvent, event_class
from app.core.events.bus import AnySubscription
from app.core.logging import get_logger

_log = get_logger("keystone.streams")
STREAM_PREFIX = "keystone:events:"
DEAD_LETTER_PREFIX = "keystone:dead-letters:"
TRACEPARENT_FIELD = "traceparent"


def stream_of(module: str) -> str:
    return f"{STREAM_PREFIX}{module}"


def dead_letter_stream(group: str) -> str:
    return f"{DEAD_LETTER_PREFIX}{group}"


def publisher_of(event_type: str) -> str:
    """`orders.OrderPlaced` is published by orders, on orders' stream."""
    return event_type.split(".", 1)[0]


def streams_read_by(subscriptions: Iterable[AnySubscription]) -> list[str]:
    """The streams a module's consumer group reads: those of the events it subscribes to."""
    return sorted({stream_of(publisher_of(sub.event.event_type)) for sub in subscriptions})


class UnreadableEntryError(Exception):
    """A stream entry this release cannot turn into an event (unknown type, bad payload)."""


def encode(event: IntegrationEvent, traceparent: str | None = None) -> dict[str, str]:
    entry = {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "event_version": str(event.event_version),
        "payload": event.model_dump_json(),
    }
    if traceparent is not None:
        # Beside the event, like in the outbox row: trace context is not part of its contract.
        entry[TRACEPARENT_FIELD] = traceparent
    return entry


def entry_traceparent(fields: Mapping[bytes, bytes]) -> str | None:
    """The trace context the entry was published in, if any (older entries have none)."""
    value = fields.get(TRACEPARENT_FIELD.encode())
    return value.decode(errors="replace") if value is not None else None


def decode(fields: Mapping[bytes, bytes]) -> IntegrationEvent:
    try:
        event_type = fields[b"event_type"].decode()
        version = int(fields[b"event_version"])
        payload = json.loads(fields[b"payload"])
    except (KeyError, ValueError) as exc:
        raise UnreadableEntryError(f"malformed entry: {type(exc).__name__}: {exc}") from exc
    cls = event_class(event_type, version)
    if cls is None:
        raise UnreadableEntryError(f"unknown event type {event_type} v{version}")
    try:
        return cls.model_validate(payload)
    except ValueError as exc:
        raise UnreadableEntryError(f"invalid {event_type} v{version}: {exc}") from exc


class StreamPublisher:
    """The relay's delivery in split mode: an event is settled once its stream has it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def deliver(self, event: IntegrationEvent, traceparent: str | None = None) -> bool:
        stream = stream_of(publisher_of(event.event_type))
        with tracing.span(
            f"publish {event.event_type}",
            traceparent=traceparent,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.destination.name": stream},
        ):
            # The consumer's delivery continues from this span (or from the writer's, when
            # this process records no trace of its own).
            carried = tracing.current_traceparent() or traceparent
            await self._redis.xadd(stream, encode(event, carried))  # type: ignore[arg-type]
        return True


async def create_groups(redis: Redis, groups: Mapping[str, Sequence[str]]) -> None:
    """Each group (a subscribing module) on each of its streams, at `0`: it will read everything
    the stream still holds. Idempotent: an existing group keeps its position."""
    for group, streams in groups.items():
        for stream in streams:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            else:
                _log.info("consumer group created", stream=stream, group=group)


def _entry_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def trim_acknowledged(redis: Redis, stream: str) -> int:
    """Drop the entries every group has acknowledged: those below the oldest pending entry of
    each group (or, for a group with none pending, below its last delivered one)."""
    if not await redis.exists(stream):  # lost with Redis's data: the consumer makes it again
        return 0
    floors: list[bytes] = []
    for group in await redis.xinfo_groups(stream):
        oldest = None
        if group["pending"]:  # may all be acknowledged by the time XPENDING answers
            oldest = (await redis.xpending(stream, group["name"]))["min"]
        floors.append(oldest or group["last-delivered-id"])
    if not floors:  # no group yet: nobody has read anything, keep it all
        return 0
    floor = min(floors, key=_entry_id)
    trimmed: int = await redis.xtrim(stream, minid=floor, approximate=False)
    return trimmed


# Atomic, so no consumer can read an entry between the check and the delete: DELCONSUMER drops
# the consumer's pending entries with it, and these are only ever deleted with none. A consumer
# that was merely quiet, not dead, is made again by its next XREADGROUP, losing nothing.
_FORGET_IDLE_CONSUMERS = """
local forgotten = 0
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local consumer = {}
  for i = 1, #info, 2 do consumer[info[i]] = info[i + 1] end
  if consumer['name'] ~= ARGV[2] and consumer['pending'] == 0
      and consumer['idle'] > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], consumer['name'])
    forgotten = forgotten + 1
  end
end
return forgotten
"""


async def forget_idle_consumers(
    redis: Redis, stream: str, group: str, *, keep: str, idle_ms: int
) -> int:
    """Deletes the group's consumers (but `keep`) idle for over `idle_ms` that own no pending
    entry: those a restarted process left behind under its old name, once their entries have
    been reclaimed. Returns how many went."""
    script = redis.register_script(_FORGET_IDLE_CONSUMERS)
    forgotten: int = await script(keys=[stream], args=[group, keep, idle_ms])
    return forgotten


@dataclass(frozen=True)
class StreamDeadLetter:
    module: str
    stream: str
    entry_id: str
    event_type: str | None
    event_id: str | None
    attempts: int
    last_error: str


async def stream_dead_letters(redis: Redis, group: str) -> list[StreamDeadLetter]:
    """The entries `group` gave up on, oldest first."""
    letters = []
    for _id, fields in await redis.xrange(dead_letter_stream(group)):
        text = {key.decode(): value.decode(errors="replace") for key, value in fields.items()}
        letters.append(
            StreamDeadLetter(
                module=group,
                stream=text.get("stream", ""),
                entry_id=text.get("entry_id", ""),
                event_type=text.get("event_type"),
                event_id=text.get("event_id"),
                attempts=int(text.get("deliveries", "0")),
                last_error=text.get("reason", ""),
            )
        )
    return letters
