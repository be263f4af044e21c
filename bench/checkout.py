"""`make bench-checkout`: how far behind the checkouts the event backbone falls.

One API process (`app.cli serve`) and one worker (`app.cli worker`), started with the staging
settings (JSON logs, pre-ping, rate limiter, metrics behind a token) against a fake HTTP payment
provider and an SMTP server (STARTTLS) of their own processes, take checkouts from N concurrent
clients for a while; then the load stops. Read from the database afterwards: orders/s placed,
placed -> terminal and placed -> confirmed p50/p99, the delivery lag of every outbox row
(dispatched - occurred), the time from stock reserved to paid (the payment job's queue wait
plus the provider), the outbox backlog sampled every half second, and the drain time after the
load stops. `--root` runs another checkout of the code (e.g. the previous build) with the same
harness and the same interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from redis import Redis

from bench.checkout_stack import (
    cpu_seconds,
    drop_database,
    fresh_database,
    plenty_of_stock,
    process,
    self_signed_certificate,
    serve_mail,
    serve_provider,
    wait_until_up,
    worker_started,
)
from bench.run import ROOT, _connect, _env
from devtools.servers import free_port

RESULTS = ROOT / "bench" / "results"
TERMINAL = ("confirmed", "rejected", "payment_failed", "cancelled", "refunded")
METRICS_TOKEN = "bench-only-metrics-token-0123456789abcdef"  # noqa: S105 - bench only
PROVIDER_KEY = "sk_test_keystone"
DRAIN_LIMIT_S = 300.0
ORDER = {
    "payment_method": "pm_card_visa",
    "shipping_address": {
        "name": "Ada",
        "line1": "1 Main St",
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
    },
}


@dataclass
class Load:
    placed: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    backlog: list[tuple[float, int]] = field(default_factory=list)

    def record(self, response: httpx.Response, since: float) -> None:
        """One answer: its latency from `since` (perf_counter), placed or refused."""
        self.latencies_ms.append((time.perf_counter() - since) * 1000)
        if response.status_code == 201:
            self.placed += 1
        else:
            self.refused[response.status_code] = self.refused.get(response.status_code, 0) + 1


# Fixed schema and status names, no input: the f-strings below build no injectable SQL.
UNDELIVERED = " + ".join(
    f"(SELECT count(*) FROM {schema}.outbox WHERE dispatched_at IS NULL)"  # noqa: S608
    for schema in ("users", "catalog", "orders")
)
UNSETTLED = f"SELECT count(*) FROM orders.orders WHERE status NOT IN {TERMINAL!r}"  # noqa: S608


async def sample_backlog(
    database_url: str, load: Load, started: float, stop: asyncio.Event
) -> None:
    db = await _connect(database_url)
    try:
        while not stop.is_set():
            rows = await db.fetchval(f"SELECT {UNDELIVERED}")
            load.backlog.append((time.monotonic() - started, rows))
            await asyncio.sleep(0.5)
    finally:
        await db.close()


async def client(
    http: httpx.AsyncClient, url: str, bodies: list[dict[str, object]], until: float, load: Load
) -> None:
    turn = 0
    while time.monotonic() < until:
        body, turn = bodies[turn % len(bodies)], turn + 1
        started = time.perf_counter()
        response = await http.post(url, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        load.record(response, started)


async def paced(
    http: httpx.AsyncClient,
    url: str,
    bodies: list[dict[str, object]],
    until: float,
    load: Load,
    rate: float,
) -> None:
    """Open loop: an order every 1/rate s whatever the answers; latency counts from its slot."""

    async def one(body: dict[str, object], slot: float) -> None:
        response = await http.post(url, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        load.record(response, slot)

    sent: list[asyncio.Task[None]] = []
    first = time.perf_counter()
    while time.monotonic() < until:
        slot = first + len(sent) / rate
        await asyncio.sleep(max(0.0, slot - time.perf_counter()))
        sent.append(asyncio.create_task(one(bodies[len(sent) % len(bodies)], slot)))
    await asyncio.gather(*sent)


async def drive(
    api: str, database_url: str, products: list[str], args: argparse.Namespace
) -> dict[str, object]:
    login = {"username": "customer@keystone.local", "password": "cleo-pours-v60"}
    db = await _connect(database_url)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=30) as http:
        token = (await http.post("/api/v1/auth/login", data=login)).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        bodies = [{**ORDER, "items": [{"product_id": p, "quantity": 1}]} for p in products]
        load, stop = Load(), asyncio.Event()
        started = time.monotonic()
        sampler = asyncio.create_task(sample_backlog(database_url, load, started, stop))
        until = started + args.seconds
        if args.rate:
            await paced(http, "/api/v1/orders", bodies, until, load, args.rate)
        else:
            clients = (
                client(http, "/api/v1/orders", bodies[n:] + bodies[:n], until, load)
                for n in range(args.clients)
            )
            await asyncio.gather(*clients)
        load_s = time.monotonic() - started
        stopped = time.monotonic()
        while time.monotonic() - stopped < DRAIN_LIMIT_S:
            if not await db.fetchval(UNSETTLED) and not await db.fetchval(f"SELECT {UNDELIVERED}"):
                break
            await asyncio.sleep(0.1)
        drain_s = time.monotonic() - stopped
        stop.set()
        await sampler
        figures = await from_database(db)
        figures["metrics"] = await scrape_names(args.metrics_urls)
    await db.close()
    return {**figures, "load": load, "load_s": load_s, "drain_s": drain_s}


def pct(values: list[float], p: int) -> float:
    if len(values) < 2 or p == 100:
        return max(values) if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def from_database(db: asyncpg.Connection) -> dict[str, object]:
    terminal = await db.fetch(
        "SELECT o.status, extract(epoch FROM min(c.at) - o.created_at) AS seconds"  # noqa: S608
        " FROM orders.orders o JOIN orders.status_changes c"
        f" ON c.order_id = o.id AND c.status IN {TERMINAL!r} GROUP BY o.id"
    )
    paying = await db.fetch(
        """SELECT extract(epoch FROM p.at - r.at) AS seconds
           FROM orders.status_changes r JOIN orders.status_changes p
             ON p.order_id = r.order_id AND p.status = 'paid'
           WHERE r.status = 'stock_reserved'"""
    )
    lag = await db.fetch(
        " UNION ALL ".join(
            f"SELECT extract(epoch FROM dispatched_at - occurred_at) AS s FROM {schema}.outbox"  # noqa: S608
            " WHERE dispatched_at IS NOT NULL"
            for schema in ("catalog", "orders")
        )
    )
    return {
        "terminal_s": [float(r["seconds"]) for r in terminal],
        "confirmed_s": [float(r["seconds"]) for r in terminal if r["status"] == "confirmed"],
        "statuses": {s: sum(1 for r in terminal if r["status"] == s) for s in TERMINAL},
        "orders": await db.fetchval("SELECT count(*) FROM orders.orders"),
        "reserved_to_paid_s": [float(r["seconds"]) for r in paying],
        "lag_s": [float(r["s"]) for r in lag],
    }


async def scrape_names(urls: list[str]) -> list[str]:
    names: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as http:
        for url in urls:
            try:
                response = await http.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            except httpx.HTTPError:
                continue
            for line in response.text.splitlines():
                if line.startswith("keystone_"):
                    names.add(line.split("{")[0].split(" ")[0])
    return sorted(names)


def report(label: str, result: dict[str, object], args: argparse.Namespace, load_avg: str) -> str:
    load: Load = result["load"]  # type: ignore[assignment]
    ms = lambda values, p: f"{pct(values, p) * 1000:,.0f}"  # noqa: E731
    terminal, confirmed = result["terminal_s"], result["confirmed_s"]
    lag, paying = result["lag_s"], result["reserved_to_paid_s"]
    peak = max((b for _, b in load.backlog), default=0)
    step = max(1, len(load.backlog) // 12)
    backlog = ", ".join(f"{t:.0f}s:{b}" for t, b in load.backlog[::step])
    rate = load.placed / result["load_s"]  # type: ignore[operator]
    posts = load.latencies_ms
    shape = f"{args.rate:g} orders/s offered" if args.rate else f"{args.clients} clients"
    cpu: dict[str, float] = result["cpu_s"]  # type: ignore[assignment]
    per_order = ", ".join(
        f"{name} {seconds:.1f} s ({seconds * 1000 / max(1, load.placed):.1f} ms/order)"
        for name, seconds in cpu.items()
    )
    return "\n".join(
        [
            f"### {label}: {shape}, {args.seconds} s, {args.products} product(s), "
            f"load average before {load_avg}",
            "",
            f"- placed {load.placed} orders ({rate:.1f}/s), refused {load.refused or 'none'};"
            f" POST /orders p50 {pct(posts, 50):.0f} ms, p99 {pct(posts, 99):.0f} ms",
            f"- terminal: {result['statuses']} of {result['orders']} orders",
            f"- placed -> terminal p50 {ms(terminal, 50)} ms, p99 {ms(terminal, 99)} ms,"
            f" max {ms(terminal, 100)} ms;"
            f" placed -> confirmed p50 {ms(confirmed, 50)} ms, p99 {ms(confirmed, 99)} ms",
            f"- delivery lag ({len(lag)} events) p50 {ms(lag, 50)} ms, p99 {ms(lag, 99)} ms;"
            f" stock reserved -> paid (job wait + provider) p50 {ms(paying, 50)} ms,"
            f" p99 {ms(paying, 99)} ms",
            f"- outbox backlog peak {peak}; over time (s:rows) {backlog}",
            f"- drain after the load stopped: {result['drain_s']:.2f} s",
            f"- CPU from the load's start to the drain's end: {per_order}",
            f"- load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
            f"- metrics scraped: {', '.join(result['metrics']) or 'none'}",  # type: ignore[arg-type]
            "",
        ]
    )


def run(args: argparse.Namespace) -> str:
    load_avg = " ".join(f"{v:.2f}" for v in os.getloadavg())
    root = Path(args.root).resolve()
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    Redis.from_url(redis_url).flushdb()
    database_url = asyncio.run(fresh_database(server))
    logs = RESULTS / "checkout-logs"
    logs.mkdir(parents=True, exist_ok=True)
    provider_port, api_port, worker_port = free_port(), free_port(), free_port()
    mail_port = free_port()
    certificate, key = self_signed_certificate(logs)
    env = _env(
        database_url,
        redis_url,
        PAYMENT_API_URL=f"http://127.0.0.1:{provider_port}",
        PAYMENT_API_KEY=PROVIDER_KEY,
        METRICS_ENABLED="true",
        METRICS_TOKEN=METRICS_TOKEN,
        WORKER_METRICS_PORT=str(worker_port),
        SMTP_PORT=str(mail_port),
        SSL_CERT_FILE=str(certificate),
        PYTHONPATH=str(root),
    )
    api = f"http://127.0.0.1:{api_port}"
    args.metrics_urls = [f"{api}/metrics", f"http://127.0.0.1:{worker_port}/metrics"]
    try:
        for command in ("migrate", "seed"):  # the measured build's own migrations
            subprocess.run(  # noqa: S603
                [sys.executable, "-m", "app.cli", command], cwd=root, env=env, check=True
            )
        products = asyncio.run(plenty_of_stock(database_url, args.products))
        provider = ["-m", "bench.checkout", "--provider", str(provider_port)]
        mail = ["-m", "bench.checkout", "--mail", str(mail_port), str(certificate), str(key)]
        with (
            process(provider, {**env, "PYTHONPATH": str(ROOT)}, ROOT, logs / "provider.log"),
            process(mail, {**env, "PYTHONPATH": str(ROOT)}, ROOT, logs / "mail.log"),
            process(
                ["-m", "app.cli", "serve", "--port", f"{api_port}"], env, root, logs / "api.log"
            ) as api_process,
            process(["-m", "app.cli", "worker"], env, root, logs / "worker.log") as worker,
        ):
            wait_until_up(f"{api}/readyz")
            wait_until_up(f"http://127.0.0.1:{provider_port}/")
            worker_started(logs / "worker.log")
            pids = {"API": api_process.pid, "worker": worker.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            result = asyncio.run(drive(api, database_url, products, args))
            result["cpu_s"] = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        asyncio.run(drop_database(database_url))
    return report(args.label, result, args, load_avg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument(
        "--products",
        type=int,
        default=1,
        help="products the checkouts spread over (1: every order takes the same hot stock row)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: orders/s offered whatever the answers (--clients caps the connections)",
    )
    parser.add_argument("--root", default=str(ROOT), help="the checkout of Keystone to measure")
    parser.add_argument("--label", default="this build")
    parser.add_argument("--provider", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mail", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provider:
        serve_provider(args.provider)
        return
    if args.mail:
        serve_mail(int(args.mail[0]), Path(args.mail[1]), Path(args.mail[2]))
        return
    text = run(args)
    print(text, flush=True)
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "checkout.md").open("a") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
