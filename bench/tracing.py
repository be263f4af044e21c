"""`python -m bench.tracing`: what tracing costs on the hot read (the cached product by id).

Three Keystone servers on the same data, as `make bench` runs them (one uvicorn worker each,
staging's stack: JSON logs, access lines, rate limiter): tracing off; tracing on at the default
`TRACING_SAMPLE_RATIO` (0.1); tracing on sampling every request (1.0). The traced servers batch
their spans over OTLP/HTTP to a receiver in this process that reads and drops them (a collector
elsewhere in production; parsing them here would charge this machine's CPU to the traced side).
Each traced server is loaded by wrk alternately with the untraced one (bench/run.py's `compare`:
a warm-up, then rounds alternating sides, medians kept); the load average is read before and
after each comparison, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.run import (
    API,
    Result,
    _env,
    _product_id,
    backing_services,
    compare,
    machine,
    prepare_data,
    server,
)


class Received:
    exports = 0
    bytes = 0


@contextmanager
def discarding_receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint that answers every export with 200 and counts what it was sent."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            Received.exports += 1
            Received.bytes += len(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{receiver.server_address[1]}"
    finally:
        receiver.shutdown()
        receiver.server_close()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def row(name: str, traced: Result, untraced: Result, before: str, after: str) -> str:
    return (
        f"| {name} | {traced.rps:,.0f} | {traced.p99_ms:.1f} | {untraced.rps:,.0f} "
        f"| {untraced.p99_ms:.1f} | {traced.rps / untraced.rps:.2f} | {before} → {after} |"
    )


def run(args: argparse.Namespace) -> list[str]:
    with (
        tempfile.TemporaryDirectory(prefix="keystone-bench-") as scratch,
        backing_services(Path(scratch)) as (database_url, redis_url),
        discarding_receiver() as endpoint,
    ):
        env = _env(database_url, redis_url)
        prepare_data(env, args.products)
        path = f"{API}/catalog/products/{asyncio.run(_product_id(database_url))}"
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        with (
            server("app.main:app", env) as off,
            server("app.main:app", {**env, **traced, "TRACING_SAMPLE_RATIO": "0.1"}) as tenth,
            server("app.main:app", {**env, **traced, "TRACING_SAMPLE_RATIO": "1.0"}) as every,
        ):
            rows = []
            for name, base in (("sample ratio 1.0", every), ("sample ratio 0.1", tenth)):
                before = load_average()
                on, untraced = compare(
                    base + path, off + path, {}, args.seconds, args.connections, args.rounds
                )
                rows.append(row(name, on, untraced, before, load_average()))
                print(rows[-1], flush=True)
        assert Received.exports > 0, "no span reached the receiver"
        print(f"received {Received.exports} exports, {Received.bytes / 1e6:.1f} MB", flush=True)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--products", type=int, default=5000)
    args = parser.parse_args()
    print(machine(), flush=True)
    rows = run(args)
    print("| tracing | req/s | p99 ms | off: req/s | p99 ms | ratio | load average |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
