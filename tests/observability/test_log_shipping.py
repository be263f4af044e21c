"""Centralized logs, live: a real Keystone API (`python -m app.cli serve`, JSON logs) writes its
output through a stand-in container runtime into a CRI log file where the kubelet links it; the
shipper and the aggregator of deploy/k8s/logging run as their rendered pods say (Debian's
rsyslog, the ConfigMaps' files, the pods' environment); and every line the app wrote arrives in
the aggregator's archive as the same JSON object with the pod it came from, long lines cut into
partial pieces by the runtime included, and lines written while the aggregator was down, kept
in the shipper's disk-assisted queue across a restart of the shipper itself; and each reaches
Loki's push API too (a stand-in that checks what Loki would), labelled by module and level, with
the request id beside the line rather than in its labels, through an outage of Loki."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.servers import free_port, start_redis
from tests.conftest import Servers, eventually, make_settings
from tests.databases import database_env
from tests.deploy.test_kubernetes import K8S, render_kustomization
from tests.faults.conftest import wait_until_ready
from tests.observability.logstack import (
    ContainerRuntime,
    Objects,
    Rsyslog,
    pod_here,
    rsyslogs,
)
from tests.observability.loki import LokiStandIn

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "keystone"
POD = "keystone-api-7c9d8b6f4-x2x7q"
NODE = "node-a"
# Short enough that the app's access lines arrive in pieces, as containerd cuts lines past its
# max_container_log_line_size (16 KiB by default; the same code path at any size).
MAX_LINE_BYTES = 120
DELIVERY_TIMEOUT_S = 60


@dataclass
class Stack:
    runtime: ContainerRuntime
    api: str
    shipper: Rsyslog
    aggregator: Rsyslog
    aggregator_port: int
    archive: Path
    shipper_state: Path
    loki: LokiStandIn


@pytest.fixture(scope="module")
def logging_objects() -> Objects:
    return render_kustomization(K8S / "logging")


@contextmanager
def keystone_in_a_pod(
    runtime: ContainerRuntime, database: dict[str, str], redis_url: str
) -> Iterator[str]:
    """`serve` as the container's process, with JSON logs as in production."""
    port = free_port()
    env = {
        **os.environ,
        **database,
        "REDIS_URL": redis_url,
        "APP_ENV": "test",
        "LOG_JSON": "true",
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = runtime.run(command, env, ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, runtime.file)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
async def stack(servers: Servers, logging_objects: Objects, tmp_path: Path) -> AsyncIterator[Stack]:
    # A Redis of its own: every numbered database of the suite's is some other test's.
    redis = start_redis(tmp_path / "redis", persist=False)
    url = await servers.migrated_database("keystone_log_shipping")
    database = database_env(make_settings(url, redis.url))
    port = free_port()
    loki = LokiStandIn()
    aggregator = pod_here(
        logging_objects,
        "StatefulSet",
        "log-aggregator",
        tmp_path / "aggregator",
        {"LOG_AGGREGATOR_PORT": str(port), "LOKI_PUSH_URL": loki.push_url},
    )
    shipper = pod_here(
        logging_objects,
        "DaemonSet",
        "log-shipper",
        tmp_path / "node",
        {"LOG_AGGREGATOR_HOST": "127.0.0.1", "LOG_AGGREGATOR_PORT": str(port), "NODE_NAME": NODE},
    )
    # The counters every second rather than every 10: the test reads the queue from them.
    config = shipper.folder("/etc/keystone-logging") / "shipper.conf"
    shipped = config.read_text()
    assert shipped.count('module(load="impstats" interval="10"') == 1
    config.write_text(shipped.replace('impstats" interval="10"', 'impstats" interval="1"'))
    runtime = ContainerRuntime(shipper.folder("/var/log"), NAMESPACE, POD, "api", MAX_LINE_BYTES)
    daemons = (
        Rsyslog(aggregator, tmp_path / "aggregator.log"),
        Rsyslog(shipper, tmp_path / "shipper.log"),
    )
    loki_server = loki.serve()
    try:
        with rsyslogs(*daemons), keystone_in_a_pod(runtime, database, redis.url) as api:
            yield Stack(
                runtime=runtime,
                api=api,
                aggregator=daemons[0],
                shipper=daemons[1],
                aggregator_port=port,
                archive=aggregator.folder("/var/lib/keystone-logs") / "archive",
                shipper_state=shipper.folder("/var/lib/keystone-log-shipper"),
                loki=loki,
            )
    finally:
        loki_server.shutdown()
        redis.stop()


def archived(stack: Stack) -> list[dict[str, Any]]:
    folder = stack.archive / NAMESPACE
    return [
        json.loads(line)
        for file in sorted(folder.glob("*.jsonl"))
        for line in file.read_text().splitlines()
    ]


def app_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "kubernetes"}


def request_ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["request_id"] for record in records if "request_id" in record}


async def requests(stack: Stack, phase: str, count: int = 3) -> set[str]:
    """`count` requests with ids of their own; returns once their access lines are written."""
    ids = {f"{phase}-{number}" for number in range(count)}
    async with httpx.AsyncClient(base_url=stack.api) as client:
        for request_id in sorted(ids):
            answer = await client.get("/healthz", headers={"X-Request-ID": request_id})
            assert answer.status_code == 200

    async def logged() -> bool:
        written = [json.loads(line) for _, line in stack.runtime.written() if line.startswith("{")]
        return ids <= request_ids(written)

    await eventually(logged, timeout_s=10)
    return ids


async def all_arrived(stack: Stack, ids: set[str]) -> None:
    async def arrived() -> bool:
        return ids <= request_ids(archived(stack))

    await eventually(arrived, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.2)


def queue_counters(stack: Stack) -> dict[str, int]:
    """The forwarding queue's counters, as the shipper last printed them (impstats on stdout)."""
    latest: dict[str, int] = {}
    for line in stack.shipper.log.read_text().splitlines():
        _, _, stats = line.partition(": {")
        if stats and '"name": "to-aggregator queue"' in stats:
            latest = json.loads("{" + stats)
    return latest


async def wait_until_queued(stack: Stack) -> None:
    """Until the shipper has read every line written so far into its forwarding queue."""

    async def queued() -> bool:
        return queue_counters(stack).get("enqueued", 0) >= len(stack.runtime.written())

    await eventually(queued, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.2)


def assert_archived_as_written(stack: Stack, lines: list[tuple[str, str]]) -> None:
    """Each line the app wrote is a record: its own fields as written, the pod it came from."""
    records = archived(stack)
    fields = [app_fields(record) for record in records]
    for _, line in lines:
        assert (json.loads(line) if line.startswith("{") else {"message": line}) in fields, line
    origins = {
        tuple(record["kubernetes"][key] for key in ("namespace", "pod", "container", "node"))
        for record in records
    }
    assert origins == {(NAMESPACE, POD, "api", NODE)}
    assert {record["kubernetes"]["container_id"] for record in records} == {
        stack.runtime.container_id
    }


async def test_every_line_reaches_the_aggregator_through_its_outage(stack: Stack) -> None:
    stack.aggregator.start()
    stack.aggregator.wait_for_port(stack.aggregator_port)
    stack.shipper.start()
    before = await requests(stack, "before")
    # What a process prints before its logging is set up is not JSON; it travels as it is.
    stack.runtime.write("stderr", "Traceback (most recent call last): not JSON")
    await all_arrived(stack, before)

    stack.aggregator.stop()
    outage = await requests(stack, "outage")
    written = stack.runtime.written()
    await wait_until_queued(stack)
    stack.aggregator.start()
    stack.aggregator.wait_for_port(stack.aggregator_port)
    await all_arrived(stack, before | outage)

    # One file, one forwarding worker: once the last request's line is in, all before it are.
    assert_archived_as_written(stack, written)
    assert stack.runtime.partial_pieces > 0  # lines did arrive in pieces, and were joined
    records = archived(stack)
    access = [record for record in records if record.get("request_id") in before | outage]
    assert {(r["level"], r["event"], r["status"]) for r in access} == {("info", "request", 200)}
    [crash] = [record for record in records if "message" in record]
    assert crash["kubernetes"]["stream"] == "stderr"


async def test_a_shipper_stopped_in_an_outage_saves_its_queue_and_sends_it_later(
    stack: Stack,
) -> None:
    stack.shipper.start()  # the aggregator is unreachable from the start
    outage = await requests(stack, "outage")
    await wait_until_queued(stack)
    queued = stack.runtime.written()
    stack.shipper.stop()  # a node drain, a rollout of the shipper
    spilled = b"".join(f.read_bytes() for f in stack.shipper_state.glob("to-aggregator.*"))
    assert all(request_id.encode() in spilled for request_id in outage)
    unread = await requests(stack, "unread")  # waiting in the file, past the saved offset
    written = stack.runtime.written()

    stack.shipper.start()
    stack.aggregator.start()
    stack.aggregator.wait_for_port(stack.aggregator_port)
    await all_arrived(stack, outage | unread)

    # rsyslog 8.2302 cannot hand back the one line its forwarding worker holds when it is
    # stopped while retrying (docs/observability.md): the oldest queued line, never a later one.
    fields = [app_fields(record) for record in archived(stack)]
    lost = [line for _, line in written if json.loads(line) not in fields]
    assert lost in ([], [queued[0][1]])
    assert_archived_as_written(stack, written[len(lost) :])


async def test_every_line_reaches_loki_labelled_by_module_and_level_through_its_outage(
    stack: Stack,
) -> None:
    stack.loki.failing = True
    stack.aggregator.start()
    stack.aggregator.wait_for_port(stack.aggregator_port)
    stack.shipper.start()
    probes = await requests(stack, "loki-down")  # /healthz: core's
    async with httpx.AsyncClient(base_url=stack.api) as client:
        listed = await client.get("/api/v1/catalog/products", headers={"X-Request-ID": "cat-1"})
        assert listed.status_code == 200
    await all_arrived(stack, probes | {"cat-1"})  # the archive does not wait for Loki

    async def refused() -> bool:
        return stack.loki.refused > 1  # rsyslog sent the batch again after Loki's 503

    await eventually(refused, timeout_s=DELIVERY_TIMEOUT_S)
    stack.loki.failing = False
    after = await requests(stack, "loki-up")

    async def in_loki() -> bool:
        pushed = [json.loads(entry.line) for entry in stack.loki.taken()]
        return probes | after | {"cat-1"} <= request_ids(pushed)

    await eventually(in_loki, timeout_s=DELIVERY_TIMEOUT_S, interval_s=0.2)
    assert stack.loki.errors == []
    entries = stack.loki.taken()
    assert {json.dumps(r, sort_keys=True) for r in archived(stack)} <= {
        json.dumps(json.loads(entry.line), sort_keys=True) for entry in entries
    }
    for entry in entries:
        record = json.loads(entry.line)
        assert entry.labels == {
            "namespace": NAMESPACE,
            "container": "api",
            "module": record["module"],
            "level": record["level"],
        }
        # Ids per request go beside the line, never in a label: one stream each would follow.
        assert entry.metadata.get("request_id") == record.get("request_id")
        assert entry.metadata["pod"] == POD
        written = datetime.fromisoformat(record["timestamp"])
        assert entry.nanoseconds // 1000 == int(written.timestamp() * 1_000_000)
    access = {json.loads(e.line).get("request_id"): e.labels for e in entries}
    assert access["cat-1"]["module"] == "catalog"
    assert {access[request_id]["module"] for request_id in probes | after} == {"core"}
