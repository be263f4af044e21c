"""The aggregator's Loki forwarder (deploy/observability/logging/loki_push.py) on its own: the
push request it builds is one Loki reads, ids per request never become labels, and a batch is
cut into pushes Loki accepts. The path through rsyslog and a Loki outage is in
test_log_shipping.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from tests.observability.loki import shape_errors

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/observability/logging/loki_push.py"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def loki_push() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loki_push", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(**fields: object) -> str:
    kubernetes = {"namespace": "keystone", "container": "worker", "pod": "keystone-worker-1"}
    return json.dumps({"kubernetes": kubernetes, **fields})


def test_ids_travel_as_metadata_and_labels_take_few_values() -> None:
    lines = [
        record(
            module="orders",
            level="info",
            timestamp="2026-11-29T16:30:20.402142Z",
            request_id="r-2",
            trace_id=TRACE_ID,
            span_id="b7ad6b7169203331",
        ),
        record(
            module="orders", level="info", timestamp="2026-11-29T16:30:19.000001Z", request_id="r-1"
        ),
        "Traceback (most recent call last): not JSON",
    ]
    body = loki_push().push_body(lines, now_ns=1_764_433_820_000_000_000)

    assert shape_errors(body) == []
    streams = {tuple(sorted(s["stream"].items())): s["values"] for s in body["streams"]}
    orders = streams[
        (
            ("container", "worker"),
            ("level", "info"),
            ("module", "orders"),
            ("namespace", "keystone"),
        )
    ]
    assert [value[0] for value in orders] == ["1795969819000001000", "1795969820402142000"]
    assert orders[1][1] == lines[0]
    assert orders[1][2] == {
        "request_id": "r-2",
        "trace_id": TRACE_ID,
        "span_id": "b7ad6b7169203331",
        "pod": "keystone-worker-1",
    }
    unknown = {"namespace": "unknown", "container": "unknown", "module": "unknown"}
    [crash] = [s for s in body["streams"] if s["stream"] == {**unknown, "level": "unknown"}]
    assert crash["values"] == [["1764433820000000000", lines[2], {}]]


def test_a_batch_is_cut_into_pushes_of_at_most_a_megabyte() -> None:
    forwarder = loki_push()
    lines = ["x" * 400_000] * 5 + ["y" * 2_000_000]
    assert [len(chunk) for chunk in forwarder.chunks(lines)] == [2, 2, 1, 1]
