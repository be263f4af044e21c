"""A stand-in for Loki's push API (`POST /loki/api/v1/push`, JSON), for the log shipping tests:
it checks each request as Loki reads it (streams[].stream labels, values[[ns timestamp, line,
structured metadata]]), records the pushes it took, and can be made to fail (503) like a Loki
that is down."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools.servers import free_port

PUSH_PATH = "/loki/api/v1/push"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    labels: dict[str, str]
    nanoseconds: int
    line: str
    metadata: dict[str, str]


def shape_errors(body: Any) -> list[str]:
    """What Loki would refuse in a push request's JSON (an empty list: nothing)."""
    if not isinstance(body, dict) or not isinstance(body.get("streams"), list):
        return ["no streams list"]
    errors: list[str] = []
    for stream in body["streams"]:
        labels, values = stream.get("stream"), stream.get("values")
        if not isinstance(labels, dict) or not labels:
            errors.append(f"stream labels: {labels!r}")
        elif not all(LABEL_NAME.match(k) and isinstance(v, str) for k, v in labels.items()):
            errors.append(f"label names or values: {labels!r}")
        if not isinstance(values, list) or not values:
            errors.append(f"values: {values!r}")
            continue
        for value in values:
            if not (isinstance(value, list) and len(value) in (2, 3)):
                errors.append(f"entry: {value!r}")
            elif not (isinstance(value[0], str) and value[0].isdigit()):
                errors.append(f"timestamp (a string of ns): {value[0]!r}")
            elif not isinstance(value[1], str):
                errors.append(f"line: {value[1]!r}")
            elif len(value) == 3 and not all(isinstance(v, str) for v in value[2].values()):
                errors.append(f"structured metadata: {value[2]!r}")
    return errors


@dataclass
class LokiStandIn:
    port: int = field(default_factory=free_port)
    failing: bool = False
    entries: list[Entry] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PUSH_PATH}"

    def taken(self) -> list[Entry]:
        with self._lock:
            return list(self.entries)

    def receive(self, path: str, content_type: str, raw: bytes) -> int:
        with self._lock:
            if self.failing:
                self.refused += 1
                return 503
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            errors = shape_errors(body)
            if path != PUSH_PATH or content_type != "application/json":
                errors.append(f"{path} as {content_type}")
            if errors:
                self.errors.extend(errors)
                return 400
            for stream in body["streams"]:
                for ns, line, *metadata in stream["values"]:
                    entry = Entry(stream["stream"], int(ns), line, (metadata or [{}])[0])
                    self.entries.append(entry)
            return 204

    def serve(self) -> ThreadingHTTPServer:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = stand_in.receive(self.path, self.headers.get("Content-Type", ""), raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass  # the test reads what was pushed, not an access log

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
