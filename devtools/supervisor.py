"""How `python -m devtools run` (what `make run` runs) starts its children (embedded servers,
the API with --reload, the worker) and how all of it stops.

- SIGINT (Ctrl-C), SIGTERM (a process manager, `timeout`) and SIGHUP (a closed terminal) stop
  everything the runner started, children first, then the mail sink, Redis and Postgres, and
  the runner exits 0. A signal arriving while it stops is ignored: it must not cut the
  stopping short (two signals, e.g. make's and the terminal's, used to leave Redis running).
- Each child runs in a session of its own, so only the runner hears the terminal, and it
  signals each child's whole process group (uvicorn's reloader and its server process).
- Run from a terminal, the runner takes the terminal's foreground for its own process group:
  Ctrl-C then reaches the runner alone, not `make` and `uv` above it, which would die of the
  signal (make exits 130) instead of seeing the runner's clean exit 0.
- A watchdog process, in a session of its own, holds the read end of a pipe only the runner
  writes to, and learns from it what to stop: the children's process groups, Redis, Postgres's
  data folder. If the pipe closes without the runner saying it stopped them (SIGKILL, a crash),
  the watchdog stops them itself (devtools/watchdog.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO

CHILD_STOP_TIMEOUT_S = 8.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):  # noqa: N818 - a request to stop, not a failure
    """The runner was asked to stop (a signal)."""


class DevStack:
    """Everything the runner started, stopped in reverse order, once."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stoppers: list[Callable[[], None]] = []
        self._stopping = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._orders: IO[bytes] | None = None

    def start_watchdog(self) -> None:
        read_end, write_end = os.pipe()
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "devtools.watchdog"],
            stdin=read_end,
            start_new_session=True,
        )
        os.close(read_end)
        self._orders = os.fdopen(write_end, "wb", buffering=0)

    def tell_watchdog(self, what: str, value: str | int) -> None:
        """What the watchdog must stop if the runner dies: a process `group`, or the `postgres`
        of a data folder."""
        if self._orders is not None:
            self._orders.write(f"{what} {value}\n".encode())

    def spawn(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
        self.processes.append(process)
        self.tell_watchdog("group", process.pid)
        return process

    def install_signal_handlers(self) -> None:
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, self._on_signal)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            raise Interrupted

    def stop(self) -> None:
        self._stopping = True
        for process in reversed(self.processes):
            _signal_group(process, signal.SIGINT)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            # The reloader's server process may still be going down: its group is told too.
            _signal_group(process, signal.SIGKILL, only_leftovers=True)
        for stop in reversed(self.stoppers):
            stop()
        if self._orders is not None:
            self._orders.write(b"stopped\n")
            self._orders.close()
        if self._watchdog is not None:
            self._watchdog.wait(timeout=5)


def _signal_group(
    process: subprocess.Popen[bytes], signum: signal.Signals, only_leftovers: bool = False
) -> None:
    if not only_leftovers and process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Make the runner's own process group the terminal's foreground while it runs (see the
    module's docstring); give it back afterwards. Nothing happens without a terminal, or when
    the runner runs in the background."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield
        return
    try:
        previous = os.tcgetpgrp(tty)
        if previous != os.getpgrp():
            yield
            return
        try:
            os.setpgid(0, 0)
        except OSError:  # a session leader keeps its group; it has the terminal already
            yield
            return
        _set_foreground(tty, os.getpgrp())
        # Ctrl-Z would stop the runner alone, which the shell (waiting for make) never notices:
        # the terminal would stay with a stopped group. Ctrl-C is the way out.
        suspend = signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGTSTP, suspend)
            _set_foreground(tty, previous)
    finally:
        os.close(tty)


def _set_foreground(tty: int, group: int) -> None:
    # A process group taking the terminal is sent SIGTTOU unless it ignores it meanwhile.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        with contextlib.suppress(OSError):  # the group that had it is gone already
            os.tcsetpgrp(tty, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)
