"""The consuming side of the Redis Streams transport: one loop per subscribing module.

A module's consumer reads the streams of the events it subscribes to with its own consumer
group, hands each event to its handlers through its inbox (EventBus: idempotent per handler)
and acknowledges the entry once they have settled. An entry left unacknowledged (its consumer
died, or a handler will be retried) is claimed again after EVENT_STREAM_CLAIM_IDLE_MS by any
consumer of the group; after EVENT_STREAM_MAX_DELIVERIES it goes to the group's dead-letter
stream instead. Delivery is at-least-once; the inboxes make it effectively once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.core.events.delivery import EventDelivery
from app.core.events.streams import (
    UnreadableEntryError,
    create_groups,
    dead_letter_stream,
    decode,
    entry_traceparent,
    forget_idle_consumers,
    trim_acknowledged,
)
from app.core.jobs import REDIS_DOWN, RETRY_AFTER_REDIS_DOWN_S
from app.core.logging import get_logger

_log = get_logger("keystone.consumer")
Fields = dict[bytes, bytes]


def consumer_name() -> str:
    """Unique per process: a restarted process is a new consumer, and claims what the old one
    left pending like any other consumer would. A stable name per pod would not stop the
    growth (a Deployment's replacement pod has a new hostname) and would be unsafe where two
    processes share a hostname (containers with host networking, several workers per pod): two
    live readers under one name would each take the other's pending entries for their own. So
    the old names are forgotten instead, once idle and owning nothing (`_housekeep`)."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumerSettings:
    block_ms: int
    batch_size: int
    claim_idle_ms: int
    max_deliveries: int
    trim_interval_s: float

    @property
    def forget_idle_ms(self) -> int:
        """A live consumer reads at least every block and claims every half claim interval,
        so one silent for twice the longer of both is gone (and any entry it held has been
        claimable for a full claim interval)."""
        return 2 * max(self.claim_idle_ms, self.block_ms)


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        handlers: EventDelivery,
        *,
        group: str,
        streams: list[str],
        consumer: str,
        settings: ConsumerSettings,
    ) -> None:
        """`handlers` delivers to the group's module's own handlers only."""
        self.group = group
        self.streams = streams
        self.consumer = consumer
        self._redis = redis
        self._handlers = handlers
        self._settings = settings
        self._claim_cursors = dict.fromkeys(streams, "0-0")
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._stopping = False

    async def run(self) -> None:
        """Until `stop()`; an unexpected error ends the loop (readiness then fails), Redis
        being unreachable or having lost the group does not."""
        self._stopping = False
        grouped = False
        while not self._stopping:
            try:
                if not grouped:  # at start, and again if Redis lost the group
                    await create_groups(self._redis, {self.group: self.streams})
                    grouped = True
                    _log.info("consuming", group=self.group, consumer=self.consumer)
                await self.run_once()
            except REDIS_DOWN as exc:
                _log.warning("redis unavailable; retrying", group=self.group, error=repr(exc))
                await asyncio.sleep(RETRY_AFTER_REDIS_DOWN_S)
            except ResponseError as exc:
                # NOGROUP, or (Redis 7) UNBLOCKED when the stream vanished under a blocked read:
                # Redis lost its data (a restart without persistence, a failover to an empty
                # replica). What it held is gone; what is published from now on is not.
                if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                _log.error("consumer group gone; creating it again", group=self.group)
                grouped = False

    def stop(self) -> None:
        """The entry in hand is finished; the loop ends within one XREADGROUP block."""
        self._stopping = True

    async def run_once(self) -> int:
        """Reclaim and trim when due, then read new entries; returns how many were handled."""
        handled = 0
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self._settings.claim_idle_ms / 2000
            for stream in self.streams:
                handled += await self._reclaim(stream)
        if now >= self._next_trim:
            self._next_trim = now + self._settings.trim_interval_s
            await self._housekeep()
        replies = await self._redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, ">"),
            count=self._settings.batch_size,
            block=self._settings.block_ms,
        )
        for stream, entries in replies or ():
            for entry_id, fields in entries:
                await self._handle(stream.decode(), entry_id, fields, deliveries=1)
                handled += 1
        return handled

    async def _housekeep(self) -> None:
        """Trims the streams and forgets the group's dead consumers (their entries are claimed
        first, by `_reclaim`). A failure is logged and tried again next interval, and never
        stops the consumption it is there to serve."""
        for stream in self.streams:
            try:
                await trim_acknowledged(self._redis, stream)
                forgotten = await forget_idle_consumers(
                    self._redis,
                    stream,
                    self.group,
                    keep=self.consumer,
                    idle_ms=self._settings.forget_idle_ms,
                )
            except REDIS_DOWN:
                raise
            except Exception:
                _log.exception("stream housekeeping failed; trying again later", stream=stream)
            else:
                if forgotten:
                    _log.info("idle consumers forgotten", stream=stream, count=forgotten)

    async def _reclaim(self, stream: str) -> int:
        """Claims one batch of the group's entries idle for too long, from where the last pass
        stopped, and handles them again (or dead-letters them)."""
        start = self._claim_cursors[stream]
        reply = await self._redis.xautoclaim(
            stream,
            self.group,
            self.consumer,
            min_idle_time=self._settings.claim_idle_ms,
            start_id=start,
            count=self._settings.batch_size,
        )
        cursor, claimed = reply[0], reply[1]
        self._claim_cursors[stream] = cursor.decode() if isinstance(cursor, bytes) else cursor
        # Redis 6.2 answers nil for a pending entry deleted or trimmed from the stream (7.0
        # drops it from the pending list itself): acknowledge it, there is nothing to deliver.
        live = [(entry_id, fields) for entry_id, fields in claimed if entry_id is not None]
        if len(live) < len(claimed):
            await self._ack_vanished(stream, start, self._claim_cursors[stream], live)
        if not live:
            return 0
        deliveries = await self._deliveries(stream, [entry_id for entry_id, _ in live])
        for (entry_id, fields), count in zip(live, deliveries, strict=True):
            await self._handle(stream, entry_id, fields, deliveries=count)
        return len(live)

    async def _deliveries(self, stream: str, entry_ids: list[bytes]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        return [reply[0]["times_delivered"] if reply else 1 for reply in replies]

    async def _ack_vanished(
        self, stream: str, start: str, end: str, live: list[tuple[bytes, Fields]]
    ) -> None:
        kept = {entry_id for entry_id, _ in live}
        mine = await self._redis.xpending_range(
            stream,
            self.group,
            min=start,
            max="+" if end == "0-0" else end,
            count=self._settings.batch_size * 2,
            consumername=self.consumer,
        )
        for pending in mine:
            entry_id = pending["message_id"]
            if entry_id not in kept and not await self._redis.xrange(stream, entry_id, entry_id):
                await self._redis.xack(stream, self.group, entry_id)
                _log.warning("pending entry no longer in the stream; acknowledged", stream=stream)

    async def _handle(self, stream: str, entry_id: bytes, fields: Fields, deliveries: int) -> None:
        if deliveries > self._settings.max_deliveries:
            await self._dead_letter(stream, entry_id, fields, deliveries - 1)
            return
        try:
            event = decode(fields)
            settled = await self._handlers.deliver(event, traceparent=entry_traceparent(fields))
        except UnreadableEntryError as exc:
            _log.error("unreadable stream entry", stream=stream, group=self.group, error=str(exc))
            settled = False
        except Exception:
            _log.exception("stream entry not delivered; claimed again later", stream=stream)
            settled = False
        if settled:
            await self._redis.xack(stream, self.group, entry_id)

    async def _dead_letter(
        self, stream: str, entry_id: bytes, fields: Fields, deliveries: int
    ) -> None:
        try:
            decode(fields)
            reason = f"not acknowledged after {deliveries} deliveries: see the logs and inbox"
        except UnreadableEntryError as exc:
            reason = str(exc)
        letter: dict[bytes, bytes | str | int] = {
            **fields,
            b"stream": stream,
            b"entry_id": entry_id,
            b"deliveries": deliveries,
            b"reason": reason[:2000],
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(dead_letter_stream(self.group), letter)  # type: ignore[arg-type]
            pipe.xack(stream, self.group, entry_id)
            await pipe.execute()
        _log.error(
            "stream entry dead-lettered",
            stream=stream,
            group=self.group,
            entry_id=entry_id.decode(),
            deliveries=deliveries,
            reason=reason,
        )
