"""The log shipping of deploy/k8s/logging on this machine: its pods' rsyslog run as the rendered
manifests say (their command, their environment, their ConfigMaps' files), each volume a folder
of the test's own; and a stand-in for the container runtime, writing a real process's output in
the CRI log format where the kubelet links it, as containerd does on a node."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import uuid4

from tests.tools import require_tool

Objects = list[dict[str, Any]]
RSYSLOG_PACKAGES = "rsyslog rsyslog-relp"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30


def exactly(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@dataclass(frozen=True)
class LocalPod:
    """A workload's one container as this machine runs it: `folders` maps each mount path to
    the folder standing in for its volume."""

    command: list[str]
    env: dict[str, str]
    folders: dict[str, Path]

    def folder(self, mount_path: str) -> Path:
        return self.folders[mount_path]


def pod_here(objects: Objects, kind: str, name: str, root: Path, given: dict[str, str]) -> LocalPod:
    """The rendered workload's container with every volume a folder under `root` (a ConfigMap's
    holding its files), mount paths in its command and environment moved there, and `given`
    for what only a cluster knows (a Service's address, the node's name)."""
    workload = exactly(objects, kind, name)
    pod = workload["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    folders: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        folder = root / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        config_map = volumes.get(mount["name"], {}).get("configMap")
        if config_map is not None:
            for file, text in exactly(objects, "ConfigMap", config_map["name"])["data"].items():
                (folder / file).write_text(text)
        folders[mount["mountPath"]] = folder

    def here(value: str) -> str:
        for path, folder in folders.items():
            if value == path or value.startswith(path + "/"):
                return str(folder) + value[len(path) :]
        return value

    env = {item["name"]: here(item["value"]) for item in container["env"] if "value" in item}
    env.update(given)
    unset = {item["name"] for item in container["env"]} - set(env)
    assert not unset, f"{name} needs {unset} from the cluster: give them"
    command = [here(arg) for arg in container["command"]]
    command[0] = require_tool(command[0], RSYSLOG_PACKAGES)
    return LocalPod(command, env, folders)


def rsyslog_check(pod: LocalPod) -> subprocess.CompletedProcess[str]:
    """rsyslogd's own validation (`-N1`) of the configuration the pod would run."""
    config = pod.command[pod.command.index("-f") + 1]
    return subprocess.run(
        [pod.command[0], "-N1", "-f", config],
        env=pod.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Rsyslog:
    """A pod's rsyslogd, started and stopped (SIGTERM, as the kubelet stops it) by the test;
    what it prints goes to `log`."""

    pod: LocalPod
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.pod.command, env=self.pod.env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"rsyslogd ignored SIGTERM:\n{self.log.read_text()}") from None

    def wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process is not None
            assert self.process.poll() is None, f"rsyslogd exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"no listener:\n{self.log.read_text()}"
                time.sleep(0.1)


@contextmanager
def rsyslogs(*daemons: Rsyslog) -> Iterator[None]:
    """Every daemon stopped at the end, whatever the test left running."""
    try:
        yield
    finally:
        for daemon in daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(timeout=10)


@dataclass
class ContainerRuntime:
    """One container's log as containerd writes it: `<time> <stream> <P|F> <text>` lines in
    /var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log, a line longer than
    `max_line_bytes` (containerd's max_container_log_line_size) cut into partial (P) pieces
    before its final (F) one, and the kubelet's link to it in /var/log/containers."""

    node_logs: Path
    namespace: str
    pod: str
    container: str
    max_line_bytes: int
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))
    lines: list[tuple[str, str]] = field(default_factory=list)  # (stream, line) as written
    partial_pieces: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        folder = self.node_logs / "pods" / f"{self.namespace}_{self.pod}_{uuid4()}"
        self.file = folder / self.container / "0.log"
        self.file.parent.mkdir(parents=True)
        self.file.touch()
        links = self.node_logs / "containers"
        links.mkdir(exist_ok=True)
        name = f"{self.pod}_{self.namespace}_{self.container}-{self.container_id}.log"
        (links / name).symlink_to(self.file)

    def write(self, stream: str, line: str) -> None:
        data, size = line.encode(), self.max_line_bytes
        pieces = [data[at : at + size] for at in range(0, max(len(data), 1), size)]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        with self._lock, self.file.open("ab") as log:
            for index, piece in enumerate(pieces):
                tag = b"F" if index == len(pieces) - 1 else b"P"
                log.write(b"%s %s %s %s\n" % (stamp, stream.encode(), tag, piece))
            self.partial_pieces += len(pieces) - 1
            self.lines.append((stream, line))

    def run(self, command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        """`command` as the container's process: each line it prints is written to the log."""
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        assert process.stderr is not None
        for stream, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
            threading.Thread(target=self._copy, args=(stream, pipe), daemon=True).start()
        return process

    def _copy(self, stream: str, pipe: IO[bytes]) -> None:
        for raw in pipe:
            self.write(stream, raw.decode(errors="replace").rstrip("\n"))

    def written(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.lines)
