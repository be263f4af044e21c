"""A TCP proxy in front of a server, which a test can cut (every connection dropped, new ones
refused) and restore: from the application's side, indistinguishable from a server restart,
without touching the real server other tests share."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from devtools.servers import free_port


class TcpProxy:
    """Listens on 127.0.0.1; forwards to a TCP host:port, or to a Unix socket when the host is
    a directory (as Postgres URLs name socket directories)."""

    def __init__(self, target_host: str, target_port: int, *, reply_delay_s: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self._reply_delay_s = reply_delay_s  # every answer held this long: a distant server
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Close the listening socket and every connection through it."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await _open_upstream_for(*self._target)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            upstream_reader, upstream_writer = await self._open_upstream()
            try:
                await asyncio.gather(
                    _pipe(reader, upstream_writer),
                    _pipe(upstream_reader, writer, self._reply_delay_s),
                )
            finally:
                upstream_writer.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._links.discard(task)


async def _open_upstream_for(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if host.startswith("/"):
        return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
    return await asyncio.open_connection(host, port)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float = 0.0
) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(data)
            await writer.drain()
    writer.close()


class TcpProxyThread:
    """A `TcpProxy` on an event loop of its own, in a thread: for servers' own processes, which
    must reach their target while the test's loop is blocked (waiting for a process to start)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._proxy = TcpProxy(target_host, target_port)
        self.port = self._proxy.port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        self.up = False

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    def start(self) -> None:
        self._run(self._proxy.start())
        self.up = True

    def cut(self) -> None:
        self._run(self._proxy.cut())
        self.up = False

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
