"""The split topology's nginx gateway (deploy/gateway) on this machine: `make run-split` and
the tests render its template with loopback upstreams and run it unprivileged."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import IO

GATEWAY_START_TIMEOUT_S = 10.0

GATEWAY_TEMPLATE = Path(__file__).resolve().parents[1] / "deploy/gateway/nginx.conf.template"


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # nginx's fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def render_gateway(directory: Path, port: int, upstreams: dict[str, str]) -> Path:
    """deploy/gateway's template with this machine's values: a loopback port and each module's
    `host:port`. Only the names given are replaced; nginx's own `$variables` stay."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    values = {f"{module.upper()}_UPSTREAM": address for module, address in upstreams.items()}
    text = Template(GATEWAY_TEMPLATE.read_text()).safe_substitute(
        GATEWAY_LISTEN=f"127.0.0.1:{port}", **values
    )
    config = directory / "nginx.conf"
    config.write_text(text)
    return config


def start_gateway(
    nginx: str, directory: Path, port: int, upstreams: dict[str, str], log: IO[bytes] | None = None
) -> Gateway:
    """nginx in the foreground, unprivileged, everything it writes under `directory`."""
    config = render_gateway(directory, port, upstreams)
    process = subprocess.Popen(  # noqa: S603 - the nginx binary, fixed arguments
        [nginx, "-p", str(directory), "-e", "stderr", "-c", str(config), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}; see its output")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return Gateway(process=process, port=port)
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("nginx did not start listening in time")
        time.sleep(0.05)
