"""A loopback TCP port forwarded to a Unix socket: the suite's embedded Postgres listens only on
a socket inside its data folder (mode 0700, as Postgres requires), which a container's
unprivileged user cannot open; through this port it reaches the same server as a deployed
image reaches a managed one, over TCP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _pump(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, path: str) -> None:
    with suppress(OSError):  # the listener closed: the forwarder stops
        while True:
            client, _ = listener.accept()
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(path)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


@contextmanager
def tcp_to_unix_socket(path: str) -> Iterator[int]:
    """Yields the loopback port forwarding to the Unix socket at `path`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
