"""The stream consumers of one process (app/core/events/consumer.py), run as tasks: started and
stopped together, and reported dead to readiness."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.core.events.consumer import StreamConsumer
from app.core.health import NotReadyError
from app.core.logging import get_logger

_log = get_logger("keystone.consumer")


def consumer_redis(url: str, timeout_s: float, block_ms: int) -> Redis:
    """A client of its own: a blocking XREADGROUP holds its connection for `block_ms`, longer
    than the shared client's socket timeout allows."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s + block_ms / 1000,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    return client


class ConsumerLoops:
    """The consumers of one process, run as tasks; readiness fails once one has died."""

    def __init__(self, redis: Redis, consumers: list[StreamConsumer]) -> None:
        self.consumers = consumers
        self._redis = redis
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(consumer.run(), name=f"stream-consumer-{consumer.group}")
            for consumer in self.consumers
        ]
        for task in self._tasks:
            task.add_done_callback(_report_death)

    async def stop(self, grace_s: float) -> None:
        tasks, self._tasks = self._tasks, []
        for consumer in self.consumers:
            consumer.stop()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:  # its delivery rolls back; the entry stays pending, claimed later
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self._redis.aclose()

    async def check(self) -> None:
        tasks = zip(self.consumers, self._tasks, strict=False)
        dead = [consumer.group for consumer, task in tasks if task.done()]
        if dead:
            raise NotReadyError(f"event consumer stopped: {', '.join(dead)}")


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.error("event consumer died", task=task.get_name(), exc_info=error)
