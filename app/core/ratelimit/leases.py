"""Leases: a process answers a client far from its limit alone for a moment, so not every
request costs a Redis round trip; the hits it let through go to Redis with its next question."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from limits import RateLimitItem

from app.core.ratelimit.decision import Decision
from app.core.ratelimit.sliding_window import RateLimiter

# A process lets through on its own at most 1/LEASE_SHARE of what Redis said remains (twice that
# while it asks again), at most LEASE_MAX_HITS hits, for at most LEASE_MAX_S (or a tenth of the
# window, if shorter). See `Lease`.
LEASE_SHARE = 16
LEASE_MAX_HITS = 64
LEASE_MAX_S = 1.0
# Past this many clients with a lease, expired leases are dropped (their unreported hits, at
# most 2 * LEASE_MAX_HITS each, with them).
LEASE_TABLE_SIZE = 10_000


@dataclass(slots=True)
class Lease:
    """What one process may decide alone for one client, from Redis's last answer.

    While it lasts, up to `budget` requests are allowed without asking Redis; the next question
    carries them, so Redis's count catches up. While that question is in flight, up to `budget`
    more are allowed on credit, carried by the question after; requests beyond the credit wait
    for the answer (else every request arriving meanwhile would ask Redis too). So a process
    lets through at most 2/LEASE_SHARE of what remained beyond what Redis has counted, and
    nothing once the client is within LEASE_SHARE hits of its limit: near the limit every
    request is asked about, as without leases.
    """

    decision: Decision
    budget: int
    ends_at: float
    served: int = 0  # let through, not reported yet
    reported: int = 0  # reported by a question still in flight
    renewal: asyncio.Future[None] | None = None  # that question, while in flight

    @classmethod
    def after(cls, decision: Decision, window_s: int, served: int = 0) -> Lease:
        budget = min(LEASE_MAX_HITS, decision.remaining // LEASE_SHARE) if decision.allowed else 0
        return cls(decision, budget, time.monotonic() + cls.duration(window_s), served)

    @staticmethod
    def duration(window_s: int) -> float:
        return min(LEASE_MAX_S, window_s / 10)

    def take(self) -> Decision | None:
        """This request's decision if the lease covers it, else None (ask Redis)."""
        if self.served >= self.budget or time.monotonic() >= self.ends_at:
            return None
        self.served += 1
        granted = self.decision
        remaining = max(0, granted.remaining - self.reported - self.served)
        return Decision(True, granted.limit, remaining, granted.reset_after_s)

    def hand_back(self, window_s: int) -> int:
        """The hits to report with a question to Redis; the lease gives credit until the answer
        renews it."""
        served, self.served = self.served, 0
        self.reported += served
        self.ends_at = time.monotonic() + self.duration(window_s)
        return served


class Leases:
    """The leases of this process, by limit and client."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._leases: dict[str, Lease] = {}

    async def hit(self, item: RateLimitItem, *key: str) -> Decision | None:
        name = item.key_for(*key)
        while True:
            lease = self._leases.get(name)
            if lease is not None and (decision := lease.take()) is not None:
                return decision
            if lease is None or lease.renewal is None:
                return await self._renew(item, key, name, lease)
            # Credit spent while another request asks Redis: wait for its answer rather than
            # each asking too (on a loaded Redis that storm made every answer slower).
            await asyncio.shield(lease.renewal)

    async def _renew(
        self, item: RateLimitItem, key: tuple[str, ...], name: str, lease: Lease | None
    ) -> Decision | None:
        window_s = item.get_expiry()
        served = 0
        if lease is not None:
            served = lease.hand_back(window_s)
            lease.renewal = asyncio.get_running_loop().create_future()
        try:
            decision = await self._limiter.hit(item, *key, served=served)
            if decision is not None:
                # The hits let through on credit meanwhile go with the next question.
                current = self._leases.get(name)
                carried = current.served if current is not None else 0
                self._leases[name] = Lease.after(decision, window_s, served=carried)
                self._evict_expired()
            return decision
        finally:
            if lease is not None and lease.renewal is not None:
                lease.renewal.set_result(None)
                lease.renewal = None

    def _evict_expired(self) -> None:
        if len(self._leases) <= LEASE_TABLE_SIZE:
            return
        now = time.monotonic()
        live = {name: lease for name, lease in self._leases.items() if lease.ends_at > now}
        # Still too many (a crowd of clients at once): start over rather than sweep per request.
        self._leases = live if len(live) <= LEASE_TABLE_SIZE // 2 else {}
