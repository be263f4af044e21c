"""Stress: the users of locustfile.py, added in steps until the service stops keeping up.

`make stress` (with the service running, like `make load`) adds STRESS_STEP_USERS users every
STRESS_STEP_S seconds, up to STRESS_MAX_USERS. At the end of each step it records the users, the
requests per second, the 95th percentile and the share of failed requests of that step; the run
ends at the first step whose failures exceed 1% or whose 95th percentile exceeds
STRESS_P95_LIMIT_MS, and prints every step as a table: the last step that held is the service's
capacity on that machine. Locust's CSV and HTML reports go to load/reports/ as for `make load`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape, events
from locustfile import AnonymousBrowser, Customer, Staff

__all__ = ["AnonymousBrowser", "Customer", "Staff", "StepsToSaturation"]

STEP_USERS = int(os.environ.get("STRESS_STEP_USERS", "25"))
STEP_S = float(os.environ.get("STRESS_STEP_S", "20"))
MAX_USERS = int(os.environ.get("STRESS_MAX_USERS", "500"))
P95_LIMIT_MS = float(os.environ.get("STRESS_P95_LIMIT_MS", "500"))
FAILURE_LIMIT = 0.01


@dataclass(frozen=True)
class Step:
    users: int
    requests_per_s: float
    p95_ms: float
    failure_ratio: float

    @property
    def held(self) -> bool:
        return self.failure_ratio <= FAILURE_LIMIT and self.p95_ms <= P95_LIMIT_MS


class StepsToSaturation(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []
        self._counted = (0, 0)  # requests and failures at the start of the current step

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // STEP_S)
        if step > len(self.steps):  # a step just ended: measure it
            self.steps.append(self._measure((len(self.steps) + 1) * STEP_USERS))
            if not self.steps[-1].held:
                return None
        users = (step + 1) * STEP_USERS
        return None if users > MAX_USERS else (users, STEP_USERS)

    def _measure(self, users: int) -> Step:
        assert self.runner is not None
        total = self.runner.stats.total
        requests, failures = total.num_requests, total.num_failures
        before_requests, before_failures = self._counted
        self._counted = (requests, failures)
        done = requests - before_requests
        return Step(
            users=users,
            requests_per_s=done / STEP_S,
            p95_ms=float(total.get_current_response_time_percentile(0.95) or 0),
            failure_ratio=(failures - before_failures) / done if done else 0.0,
        )


@events.quitting.add_listener
def print_steps(environment: Any, **_: Any) -> None:
    shape = environment.shape_class
    if not isinstance(shape, StepsToSaturation):
        return
    print("\n| users | req/s | p95 ms | failed | held |\n|---:|---:|---:|---:|---|")
    for step in shape.steps:
        print(
            f"| {step.users} | {step.requests_per_s:.0f} | {step.p95_ms:.0f} "
            f"| {step.failure_ratio:.1%} | {'yes' if step.held else 'no'} |"
        )
