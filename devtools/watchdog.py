"""The dev runner's watchdog: `python -m devtools.watchdog`, started by the runner in a session of
its own (devtools/supervisor.py says why it exists)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

WATCHDOG_STOP_TIMEOUT_S = 8.0


def watch_runner(orders: IO[str]) -> None:
    """The dev runner's watchdog (`python -m devtools.watchdog`, see devtools/supervisor.py):
    reads what to stop from `orders` until it closes; unless the runner said it stopped them
    itself, stops them: process groups (SIGTERM, then SIGKILL), Postgres (fast shutdown)."""
    groups: list[int] = []
    postgres: list[Path] = []
    for line in orders:
        what, _, value = line.strip().partition(" ")
        if what == "stopped":
            return
        if what == "group":
            groups.append(int(value))
        elif what == "postgres":
            postgres.append(Path(value))
    _stop(groups, os.killpg, signal.SIGTERM)
    # Postgres last: the API and the worker may still be closing their connections.
    pids = [pid for pid in map(_postmaster_pid, postgres) if pid is not None]
    _stop(pids, os.kill, signal.SIGINT)  # Postgres's fast shutdown


def _stop(targets: list[int], send: Callable[[int, int], None], signum: int) -> None:
    """`signum` to each target (a process or a group), SIGKILL to those alive after a while."""
    for target in targets:
        _kill(send, target, signum)
    deadline = time.monotonic() + WATCHDOG_STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(targets, send):
        time.sleep(0.1)
    for target in _alive(targets, send):
        _kill(send, target, signal.SIGKILL)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill(send: Callable[[int, int], None], target: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(target, signum)


def _alive(targets: list[int], send: Callable[[int, int], None]) -> list[int]:
    alive = []
    for target in targets:
        try:
            send(target, 0)
            alive.append(target)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


if __name__ == "__main__":
    watch_runner(sys.stdin)
