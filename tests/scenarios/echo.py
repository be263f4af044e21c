"""Every event delivered twice, from outside the services: a consumer group of the test's own on
every module's stream (app/core/events/streams.py) appends each entry it reads once more, marked
as a copy so that copies are not copied again. Every subscribing module's group then reads each
event twice, under two entry ids, as after a redelivery; its inbox must make the effect once.

A group of its own, rather than a plain XREAD, because the consumers trim a stream only below
what every group has acknowledged: no entry can be trimmed before it was copied."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from app.core.config import ALL_MODULES
from app.core.events.consumer_loops import consumer_redis
from app.core.events.streams import create_groups, stream_of

ECHO_GROUP = "scenario-echo"
COPY_OF = b"copy_of"  # a field no decoder reads: the copy is the same event
STREAMS = [stream_of(module) for module in ALL_MODULES]
BLOCK_MS = 200


class EventEcho:
    def __init__(self, redis_url: str) -> None:
        self.copies = 0
        self._redis: Redis = consumer_redis(redis_url, timeout_s=5, block_ms=BLOCK_MS)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await create_groups(self._redis, {ECHO_GROUP: STREAMS})
        self._task = asyncio.create_task(self._run(), name="event-echo")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def _run(self) -> None:
        while True:
            replies = await self._redis.xreadgroup(
                ECHO_GROUP, "echo", dict.fromkeys(STREAMS, ">"), count=100, block=BLOCK_MS
            )
            for stream, entries in replies or ():
                for entry_id, fields in entries:
                    if COPY_OF not in fields:
                        await self._redis.xadd(stream, {**fields, COPY_OF: entry_id})
                        self.copies += 1
                    await self._redis.xack(stream, ECHO_GROUP, entry_id)

    async def settled(self) -> bool:
        """Every group on every stream, the echo's and each module's, has read and acknowledged
        the stream's last entry: each event and its copy were handled."""
        assert self._task is not None
        if self._task.done():
            raise AssertionError("the echo stopped") from self._task.exception()
        for stream in STREAMS:
            last = (await self._redis.xinfo_stream(stream))["last-generated-id"]
            for group in await self._redis.xinfo_groups(stream):
                if group["pending"] or group["last-delivered-id"] != last:
                    return False
        return True
