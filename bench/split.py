"""`make bench-split`: split mode against the monolith, on the same data, in the same run.

1. Product by id (cached), as a client sees it: split mode, the nginx gateway (deploy/gateway)
   in front of the catalog service, vs the monolith (one uvicorn process hosting every module)
   behind the same gateway, as an ingress fronts it in production. The monolith and the catalog
   service read directly are shown too, to tell the gateway's share from the split's.
2. Checkout (`POST /orders`): one server hosting catalog and orders (the catalog facade is a
   function call) vs one hosting orders alone, whose facade is `CatalogClient` over HTTP to the
   catalog service. Both relay no events (EVENT_TRANSPORT=inprocess on a partial process), so
   both do the same work but the facade call; wrk posts checkouts with fresh Idempotency-Keys.
3. The facade call itself, one call at a time, in process and over HTTP: its p50 overhead.

Single-worker uvicorn servers; a users server signs the demo customer in and publishes the keys
(JWKS) the others verify its token with. The sides of each comparison alternate round by round
and the medians are kept. Beside req/s, each side's CPU time per request is read from the
processes on its path (the servers, nginx's master and workers): on a shared machine it moves
far less than req/s, which other load decides as much as the code does. The table goes to
stdout and bench/results/split.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import psutil

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.peers import PeerConnections
from app.core.security.services import credential_digest, new_service_token
from app.modules.catalog.client import CatalogClient
from bench.run import (
    CUSTOMER,
    ROOT,
    Result,
    _env,
    _median,
    _product_id,
    _wrk,
    backing_services,
    machine,
    prepare_data,
    server,
)
from devtools.gateway import start_gateway
from devtools.servers import free_port
from devtools.split import nginx_path

REPORT = ROOT / "bench" / "results" / "split.md"
READ_TARGET = 0.8  # split through the gateway / monolith, product by id
CHECKOUT_TARGET = 0.7  # catalog over HTTP / in process, checkout
NOWHERE = "http://127.0.0.1:9"  # orders: not called by a checkout
ORDER = (
    '{"items": [{"product_id": "%s", "quantity": 1}], "payment_method": "pm_card_visa",'
    ' "shipping_address": {"name": "Ada", "line1": "1 Main St", "postal_code": "10115",'
    ' "city": "Berlin", "country": "DE"}}'
)


def _post_script(body: str, token: str, scratch: Path) -> Path:
    """A wrk script posting checkouts, each with an Idempotency-Key no other request used."""
    script = scratch / f"checkout-{uuid.uuid4().hex}.lua"
    script.write_text(
        textwrap.dedent(
            f"""
            local threads = 0
            function setup(thread)
              threads = threads + 1
              thread:set("tid", threads)
            end
            local n = 0
            function request()
              n = n + 1
              return wrk.format("POST", nil, {{
                ["Content-Type"] = "application/json",
                ["Authorization"] = "Bearer {token}",
                ["Idempotency-Key"] = "{uuid.uuid4().hex}-" .. tid .. "-" .. n,
              }}, '{body}')
            end
            """
        )
    )
    return script


@dataclass(frozen=True)
class Side:
    url: str
    path: Callable[[], list[psutil.Process]]  # the processes a request goes through


@dataclass(frozen=True)
class Measured:
    result: Result
    cpu_ms: float  # CPU time per request, summed over the side's processes


def _cpu_s(processes: list[psutil.Process]) -> float:
    return float(sum(p.cpu_times().user + p.cpu_times().system for p in processes))


def _alternate(
    sides: dict[str, Side],
    script: Callable[[], Path | None],
    args: argparse.Namespace,
    connections: int | None = None,
) -> dict[str, Measured]:
    """After a warm-up of each, the sides in turn, the order reversed every other round."""
    connections = connections or args.connections
    runs: dict[str, list[Measured]] = {name: [] for name in sides}
    for side in sides.values():  # warm-up: pools filled, caches primed
        _wrk(side.url, {}, 2, connections, script())
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            processes = sides[name].path()
            before = _cpu_s(processes)
            result = _wrk(sides[name].url, {}, args.seconds, connections, script())
            requests = max(1.0, result.rps * args.seconds)
            runs[name].append(Measured(result, (_cpu_s(processes) - before) * 1000 / requests))
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", flush=True)
    return {
        name: Measured(
            _median([m.result for m in measured]), statistics.median(m.cpu_ms for m in measured)
        )
        for name, measured in runs.items()
    }


def _listener(url: str) -> psutil.Process:
    """The process serving `url` (http://127.0.0.1:<port>)."""
    port = int(url.rsplit(":", 1)[1])
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            assert connection.pid is not None
            return psutil.Process(connection.pid)
    raise RuntimeError(f"nothing listens at {url}")


def _with_children(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children()]


@contextmanager
def gateway(upstreams: dict[str, str], scratch: Path) -> Iterator[tuple[str, psutil.Process]]:
    """deploy/gateway's nginx in front of `upstreams` (module -> base URL), as in production:
    its JSON access line per request included, written to /dev/null. Yields its URL and its
    master process."""
    nginx = nginx_path()
    if nginx is None:
        raise SystemExit("bench-split needs nginx for the gateway: apt-get install nginx")
    addresses = {module: url.removeprefix("http://") for module, url in upstreams.items()}
    with open(os.devnull, "wb") as log:
        running = start_gateway(nginx, scratch / "gateway", free_port(), addresses, log)
        try:
            yield running.url, psutil.Process(running.process.pid)
        finally:
            running.stop()


@dataclass(frozen=True)
class FacadeCall:
    p50_ms: dict[str, float]  # wall time of one call, in process and over HTTP
    cpu_ms: dict[str, float]  # CPU time of one call: the caller's, plus the catalog server's


async def _facade_calls(
    settings: Settings, product: UUID, calls: int, catalog: psutil.Process
) -> FacadeCall:
    """One `products_for_order` call at a time, in process and over HTTP, alternating (for the
    wall time), then each side in a run of its own (for the CPU time)."""
    runtime = build_runtime(settings)
    peers = PeerConnections(settings)
    facades = {
        "local": runtime.module("catalog").container.products(),
        "remote": CatalogClient(peers.peer("catalog")),
    }
    timings: dict[str, list[float]] = {"local": [], "remote": []}
    cpu_ms: dict[str, float] = {}
    try:
        for _ in range(calls):
            for name, facade in facades.items():
                started = time.perf_counter()
                assert await facade.products_for_order([product])
                timings[name].append((time.perf_counter() - started) * 1000)
        for name, facade in facades.items():
            started = time.process_time() + _cpu_s([catalog])
            for _ in range(calls):
                await facade.products_for_order([product])
            cpu_ms[name] = (time.process_time() + _cpu_s([catalog]) - started) * 1000 / calls
    finally:
        await peers.close()
        await runtime.stop()
    return FacadeCall({name: statistics.median(t) for name, t in timings.items()}, cpu_ms)


@dataclass(frozen=True)
class Servers:
    """The base URLs of the servers, and the gateway's master process."""

    monolith: str
    users: str
    catalog: str
    local: str  # catalog and orders
    remote: str  # orders alone
    gateway: str
    nginx: psutil.Process
    monolith_gateway: str
    monolith_nginx: psutil.Process


def run(args: argparse.Namespace) -> str:
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    with (
        tempfile.TemporaryDirectory(prefix="keystone-bench-split-") as folder,
        backing_services(Path(folder)) as (database_url, redis_url),
    ):
        scratch = Path(folder)
        orders_token = new_service_token()
        env = _env(
            database_url,
            redis_url,
            ORDERS_URL=NOWHERE,
            SERVICE_TOKEN=orders_token,
            SERVICE_CALLERS=f"orders:{credential_digest(orders_token)}",
            # A partial process relays nothing: each side does a checkout's work and no more.
            EVENT_TRANSPORT="inprocess",
        )
        prepare_data(env, 100)
        product = asyncio.run(_product_id(database_url))
        with (
            server("app.main:app", env) as monolith,
            server("app.main:app", {**env, "APP_MODULES": "users"}) as users,
            server("app.main:app", {**_verifier(env, users), "APP_MODULES": "catalog"}) as catalog,
        ):
            peer_env = {**_verifier(env, users), "CATALOG_URL": catalog}
            with (
                server("app.main:app", {**peer_env, "APP_MODULES": "catalog,orders"}) as local,
                server("app.main:app", {**peer_env, "APP_MODULES": "orders"}) as remote,
                gateway({"users": users, "catalog": catalog, "orders": remote}, scratch) as front,
                gateway(dict.fromkeys(("users", "catalog", "orders"), monolith), scratch) as mono,
            ):
                running = Servers(monolith, users, catalog, local, remote, *front, *mono)
                reads = _alternate(_read_sides(running, product), lambda: None, args)
                body = ORDER % product
                token = _customer_token(users)
                checkouts = _alternate(
                    _checkout_sides(running),
                    lambda: _post_script(body, token, scratch),
                    args,
                    args.checkout_connections,
                )
                settings = Settings(_env_file=None, **_settings_of(peer_env))  # type: ignore[call-arg]
                facade = asyncio.run(
                    _facade_calls(settings, UUID(product), args.calls, _listener(catalog))
                )
    return _report(reads, checkouts, facade, args, load_before)


def _read_sides(servers: Servers, product: str) -> dict[str, Side]:
    path = f"/api/v1/catalog/products/{product}"

    def through(nginx: psutil.Process, url: str) -> Callable[[], list[psutil.Process]]:
        return lambda: [_listener(url), *_with_children(nginx)]

    def alone(url: str) -> Callable[[], list[psutil.Process]]:
        return lambda: [_listener(url)]

    return {
        "monolith, through the gateway": Side(
            servers.monolith_gateway + path, through(servers.monolith_nginx, servers.monolith)
        ),
        "split, through the gateway": Side(
            servers.gateway + path, through(servers.nginx, servers.catalog)
        ),
        "monolith, direct": Side(servers.monolith + path, alone(servers.monolith)),
        "catalog service, direct": Side(servers.catalog + path, alone(servers.catalog)),
    }


def _checkout_sides(servers: Servers) -> dict[str, Side]:
    """Both sides ask users whether the customer's email is verified, over HTTP."""

    def in_process() -> list[psutil.Process]:
        return [_listener(servers.local), _listener(servers.users)]

    def over_http() -> list[psutil.Process]:
        return [_listener(u) for u in (servers.remote, servers.catalog, servers.users)]

    return {
        "catalog in process": Side(f"{servers.local}/api/v1/orders", in_process),
        "catalog over HTTP": Side(f"{servers.remote}/api/v1/orders", over_http),
    }


def _customer_token(users: str) -> str:
    """The demo customer (its email verified by the seed), signed in at the users service."""
    login = httpx.post(f"{users}/api/v1/auth/login", data=CUSTOMER, timeout=30)
    token: str = login.raise_for_status().json()["access_token"]
    return token


def _verifier(env: dict[str, str], users: str) -> dict[str, str]:
    """A service not hosting users: no signing key, users' public keys fetched from `users`."""
    return {**{k: v for k, v in env.items() if k != "JWT_PRIVATE_KEY"}, "USERS_URL": users}


def _settings_of(env: dict[str, str]) -> dict[str, str]:
    """This process's view: the catalog hosted here (for the in-process calls) and served at
    CATALOG_URL (for the HTTP ones)."""
    names = ("DATABASE_URL", "REDIS_URL", "CATALOG_URL", "USERS_URL")
    return {name.lower(): env[name] for name in (*names, "SERVICE_TOKEN")} | {
        "app_modules": "catalog"
    }


def _ratio(results: dict[str, Measured], side: str, reference: str, target: float) -> str:
    rps, base = results[side].result.rps, results[reference].result.rps
    ratio = rps / base if base else 0.0
    verdict = "met" if ratio >= target else "missed"
    cpu = results[side].cpu_ms / results[reference].cpu_ms if results[reference].cpu_ms else 0.0
    return (
        f"{side} / {reference}: **{ratio:.2f}** in req/s (target >= {target}: {verdict}); "
        f"{cpu:.2f} x the CPU time per request."
    )


def _table(title: str, results: dict[str, Measured]) -> list[str]:
    return [
        f"| {title} | req/s | p50 ms | p99 ms | errors | CPU ms / request |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {m.result.rps:,.0f} | {m.result.p50_ms:.1f} | {m.result.p99_ms:.1f} | "
            f"{m.result.errors} | {m.cpu_ms:.2f} |"
            for name, m in results.items()
        ),
        "",
    ]


def _report(
    reads: dict[str, Measured],
    checkouts: dict[str, Measured],
    facade: FacadeCall,
    args: argparse.Namespace,
    load: str,
) -> str:
    load_after = " ".join(f"{value:.2f}" for value in os.getloadavg())
    p50, cpu = facade.p50_ms, facade.cpu_ms
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {machine()}; "
        f"{args.connections} connections for reads; per side a 2 s warm-up, then "
        f"{args.rounds} alternating rounds of {args.seconds} s, medians shown; "
        f"load average before the run: {load}, after: {load_after}.",
        "",
        *_table("product by id (cached)", reads),
        _ratio(reads, "split, through the gateway", "monolith, through the gateway", READ_TARGET),
        _ratio(reads, "split, through the gateway", "monolith, direct", READ_TARGET),
        "",
        f"Checkouts with {args.checkout_connections} connections (more only queue past wrk's "
        "2 s timeout on this machine).",
        "",
        *_table("checkout `POST /orders`", checkouts),
        _ratio(checkouts, "catalog over HTTP", "catalog in process", CHECKOUT_TARGET),
        "",
        f"One `products_for_order` call, p50 of {args.calls} sequential calls: in process "
        f"{p50['local']:.2f} ms, over HTTP {p50['remote']:.2f} ms: "
        f"**{p50['remote'] - p50['local']:.2f} ms** overhead; CPU time per call (the caller's "
        f"and the catalog server's): {cpu['local']:.2f} ms in process, {cpu['remote']:.2f} ms "
        "over HTTP.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--checkout-connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    report = run(args)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
