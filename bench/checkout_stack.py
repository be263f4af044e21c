"""The processes and databases `bench/checkout.py` runs against: a fresh database per run, the
API, the worker, the fake payment provider and an SMTP server (STARTTLS, as staging requires)
as child processes, each logging to a file."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.run import _connect


@contextmanager
def process(
    args: list[str], env: dict[str, str], root: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and app
            [sys.executable, *args], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def worker_started(log: Path) -> None:
    """Until the worker runs its queues: a late worker would leave a backlog the whole run
    carries, and measure its start-up instead of the backbone."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if b"workers started" in log.read_bytes():
            time.sleep(2)  # its start-up sweeps
            return
        time.sleep(0.2)
    raise RuntimeError("the worker did not start")


async def fresh_database(server_url: str) -> str:
    """A database of this run's own on the server BENCH_DATABASE_URL names."""
    name = f"keystone_checkout_{uuid.uuid4().hex[:8]}"
    connection = await _connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    base, _, name = url.rpartition("/")
    connection = await _connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def plenty_of_stock(database_url: str, count: int) -> list[str]:
    """`count` of the demo products (oldest first), each with more stock than a run takes."""
    db = await _connect(database_url)
    try:
        rows = await db.fetch(
            "UPDATE catalog.products SET stock = 10000000 WHERE id IN"
            " (SELECT id FROM catalog.products WHERE archived_at IS NULL ORDER BY sku LIMIT $1)"
            " RETURNING id",
            count,
        )
    finally:
        await db.close()
    if len(rows) < count:
        raise SystemExit(f"--products {count}: the demo data has {len(rows)} products")
    return [str(row["id"]) for row in rows]


def serve_provider(port: int) -> None:
    """The fake provider of the tests, in a process of its own, until terminated."""
    import uvicorn

    from tests.fake_payment_provider import FakeProvider

    uvicorn.run(FakeProvider().app(), host="127.0.0.1", port=port, log_level="warning")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key: the SMTP server's, and the workers' only CA
    (SSL_CERT_FILE), so STARTTLS is verified as in production."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


def serve_mail(port: int, certificate: Path, key: Path) -> None:
    """An SMTP server that accepts every message after STARTTLS and keeps none, until
    terminated: the order emails succeed, as they do in production."""
    import signal

    from aiosmtpd.controller import Controller

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    controller = Controller(
        _Discard(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # taken by sigwait below, in every thread
    controller.start()
    try:
        signal.sigwait(stops)
    finally:
        controller.stop()
