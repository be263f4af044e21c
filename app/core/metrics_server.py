"""`GET /metrics` for a process that serves no HTTP otherwise (the worker).

A few lines of asyncio rather than a web framework: one route, answered as the API answers it
(Prometheus text; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`), anything
else 404, and the connection closed after each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from app.core.logging import get_logger
from app.core.telemetry import METRICS_PATH, Telemetry

_log = get_logger("keystone.metrics")
READ_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 100


class MetricsServer:
    def __init__(self, telemetry: Telemetry, token: SecretStr | None, host: str, port: int) -> None:
        self._telemetry = telemetry
        self._expected = f"Bearer {token.get_secret_value()}" if token is not None else None
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port bound (the one asked for, or the one the system chose for 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        _log.info("metrics served", host=self._host, port=self.port, path=METRICS_PATH)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request_line, headers = await _read_head(reader)
            status, content_type, body = await self._answer(request_line, headers)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            )
            if status.startswith("401"):
                head += "WWW-Authenticate: Bearer\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a client that sent garbage or went away gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, request_line: str, headers: dict[str, str]) -> tuple[str, str, bytes]:
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET" or path != METRICS_PATH:
            return "404 Not Found", "text/plain", b"not found\n"
        given = headers.get("authorization", "")
        if self._expected is not None and not hmac.compare_digest(
            given.encode(), self._expected.encode()
        ):
            return "401 Unauthorized", "text/plain", b"GET /metrics needs a bearer token\n"
        return "200 OK", CONTENT_TYPE_LATEST, await self._telemetry.scrape()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            return request_line, headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many header lines")
