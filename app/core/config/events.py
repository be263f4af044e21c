"""Integration events: the outbox relay, and the Redis Streams transport between processes
(app/core/events/, docs/split-topology.md "Events")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.core.config.base import ALL_MODULES, SettingsBase

Transport = Literal["inprocess", "redis-streams"]


class EventSettings(SettingsBase):
    # Commits wake every relay at once (NOTIFY); the poll is the fallback, and what picks up
    # deliveries retried with backoff.
    outbox_poll_interval_s: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    # How long a relay's claim on a batch lasts: a relay that died is taken over after this.
    outbox_lease_s: float = Field(default=30.0, gt=0, le=3_600)
    # Events of different aggregates delivered at once by one relay (each holds a connection
    # per subscriber for a transaction): keep it well under DB_POOL_SIZE + DB_MAX_OVERFLOW.
    outbox_concurrency: int = Field(default=8, ge=1, le=200)
    event_max_attempts: int = Field(default=5, ge=1, le=100)
    event_retry_base_s: float = Field(default=1.0, ge=0)
    # In-process from the outbox to the subscribers, or through Redis Streams (one stream per
    # publishing module, one consumer group per subscribing module). Unset: in-process when
    # this process hosts every module, Redis Streams otherwise.
    event_transport: Transport | None = None
    # XREADGROUP waits this long for new entries before it looks for stale ones to reclaim.
    event_stream_block_ms: int = Field(default=1_000, ge=10, le=60_000)
    event_stream_batch_size: int = Field(default=100, ge=1, le=10_000)
    # An entry read but not acknowledged for this long (its consumer died, or its delivery
    # failed) is claimed again (XAUTOCLAIM), by whichever consumer of the group looks first.
    event_stream_claim_idle_ms: int = Field(default=30_000, ge=10, le=86_400_000)
    # After this many deliveries an entry goes to its group's dead-letter stream. Above
    # EVENT_MAX_ATTEMPTS, so a handler that keeps failing ends as the inbox's dead letter first.
    event_stream_max_deliveries: int = Field(default=10, ge=1, le=1_000)
    # How often a consumer trims the streams it reads, below every group's oldest pending entry.
    event_stream_trim_interval_s: float = Field(default=60.0, gt=0, le=86_400)

    def events_transport(self, hosted: list[str]) -> Transport:
        """The transport of a process hosting `hosted`: EVENT_TRANSPORT, or by default
        in-process for a process hosting every module and Redis Streams for any other."""
        if self.event_transport is not None:
            return self.event_transport
        return "inprocess" if set(hosted) == set(ALL_MODULES) else "redis-streams"
