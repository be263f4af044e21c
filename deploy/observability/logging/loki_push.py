"""The aggregator's forwarder to Loki: rsyslog's omprog runs it and writes it the records, one
JSON object a line; it pushes them to Loki's push API (POST /loki/api/v1/push, JSON) and tells
rsyslog which were taken, so a record Loki did not take stays in rsyslog's queue and comes again.

Debian's rsyslog (8.2302) has no omhttp, so this small program stands in for it, with the
Python standard library only (docs/observability.md). The protocol is omprog's with
confirmMessages and useTransactions on: "OK" once ready; "OK" to each transaction mark;
"DEFER_COMMIT" to each record; at the commit the batch is pushed and the answer is "OK", or a
line saying why not, after which rsyslog keeps the batch and sends it again later.

Labels: Loki indexes a stream per distinct set of labels, so labels must take few values.
`namespace`, `container`, `module` and `level` do; the request id, trace id and span id take a
new value per request and would make a stream (an index entry, a chunk) per request: they go as
structured metadata beside the line (filterable without parsing, not indexed), and the line
itself is the whole record.

Usage (omprog's binary): python3 loki_push.py <push url> [<tenant>]
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime
from typing import Any

LABELS = ("namespace", "container", "module", "level")
METADATA = ("request_id", "trace_id", "span_id", "pod", "node")
UNKNOWN = "unknown"
TIMEOUT_S = 10
# Lines per push at most this many bytes: well under Loki's default 4 MiB request limit even
# with a batch of tracebacks (a record may be 256 KiB).
PUSH_BYTES = 1_000_000
# Loki refused the batch for good (too old, too large, malformed): sending it again would stall
# every record behind it. It is dropped here; the aggregator's archive still has it.
PERMANENT = frozenset({400, 413})


def stream_labels(record: dict[str, Any]) -> dict[str, str]:
    kubernetes = record.get("kubernetes") or {}
    found = {
        "namespace": kubernetes.get("namespace"),
        "container": kubernetes.get("container"),
        "module": record.get("module"),
        "level": record.get("level"),
    }
    return {label: str(found[label] or UNKNOWN) for label in LABELS}


def metadata(record: dict[str, Any]) -> dict[str, str]:
    kubernetes = record.get("kubernetes") or {}
    found = {**{key: kubernetes.get(key) for key in ("pod", "node")}, **record}
    return {key: str(found[key]) for key in METADATA if found.get(key)}


def nanoseconds(record: dict[str, Any], fallback: int) -> str:
    """When the app wrote the line (its `timestamp`, else the runtime's), in ns since the epoch."""
    kubernetes = record.get("kubernetes") or {}
    for written in (record.get("timestamp"), kubernetes.get("time")):
        try:
            moment = datetime.fromisoformat(str(written))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return str(int(moment.timestamp()) * 10**9 + moment.microsecond * 1000)
    return str(fallback)


def push_body(lines: list[str], now_ns: int) -> dict[str, Any]:
    """Loki's push request: one stream per label set, its entries oldest first."""
    streams: dict[tuple[tuple[str, str], ...], list[list[Any]]] = defaultdict(list)
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = {"message": line}
        labels = tuple(stream_labels(record).items())
        streams[labels].append([nanoseconds(record, now_ns), line, metadata(record)])
    return {
        "streams": [
            {"stream": dict(labels), "values": sorted(values, key=lambda value: int(value[0]))}
            for labels, values in streams.items()
        ]
    }


def chunks(lines: list[str]) -> list[list[str]]:
    """The batch cut into pushes of at most PUSH_BYTES of lines (a longer line alone)."""
    cut: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if cut[-1] and size + len(line) > PUSH_BYTES:
            cut.append([])
            size = 0
        cut[-1].append(line)
        size += len(line)
    return cut


def push_batch(url: str, tenant: str | None, lines: list[str]) -> str:
    """ "OK" once Loki took every push of the batch; otherwise why not. The batch comes again
    whole: the pushes Loki already took are sent twice, and Loki keeps one of two entries
    identical in stream, time and line."""
    for chunk in chunks(lines):
        answer = push(url, tenant, chunk)
        if answer != "OK":
            return answer
    return "OK"


def push(url: str, tenant: str | None, lines: list[str]) -> str:
    """ "OK" once Loki took the lines (or refused them for good); otherwise why not."""
    now_ns = int(datetime.now().timestamp() * 10**9)
    body = json.dumps(push_body(lines, now_ns)).encode()
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    # The URL's scheme is checked at start (main): http or https, never file: or another.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):  # noqa: S310
            return "OK"
    except urllib.error.HTTPError as refused:
        if refused.code in PERMANENT:
            print(f"loki refused {len(lines)} records for good: {refused.code}", file=sys.stderr)
            return "OK"
        return f"loki answered {refused.code}"
    except OSError as exc:
        return f"loki unreachable: {exc}"


def main(url: str, tenant: str | None) -> None:
    if not url.startswith(("http://", "https://")):
        sys.exit(f"LOKI_PUSH_URL must be an http(s) URL, not {url!r}")

    def answer(text: str) -> None:
        sys.stdout.write(text.replace("\n", " ") + "\n")
        sys.stdout.flush()

    batch: list[str] = []
    answer("OK")
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if line == "BEGIN TRANSACTION":
            batch = []
            answer("OK")
        elif line == "COMMIT TRANSACTION":
            answer(push_batch(url, tenant, batch) if batch else "OK")
            batch = []
        else:
            batch.append(line)
            answer("DEFER_COMMIT")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
