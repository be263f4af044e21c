"""`make bench`: Keystone against a bare Starlette + asyncpg baseline, same rows, same load.

Starts an embedded Postgres and Redis (or uses BENCH_DATABASE_URL / BENCH_REDIS_URL), migrates,
seeds the demo data plus BENCH_PRODUCTS products, then runs three single-worker uvicorn servers:
Keystone (full middleware stack, cache on), Keystone with CACHE_ENABLED=false, and bench/bare.py.
Each scenario is loaded with the same concurrency by wrk when installed (else a small httpx
loop), after a warm-up; the table goes to stdout, bench/results/latest.md and, between its
markers, docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.core.security.ed25519 import new_signing_key, private_pem, public_text
from devtools.servers import free_port, start_postgres, start_redis

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
LATEST = ROOT / "bench" / "results" / "latest.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
API = "/api/v1"
SIGNING_KEY = new_signing_key()
CUSTOMER = {"username": "customer@keystone.local", "password": "cleo-pours-v60"}


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(frozen=True)
class Scenario:
    name: str
    keystone: str  # which Keystone server: "cached" or "uncached"
    path: str
    authenticated: bool = False
    target: float | None = None


SCENARIOS = [
    Scenario("product by id, cached", "cached", "{product}", target=0.6),
    Scenario("product by id, uncached", "uncached", "{product}", target=0.35),
    Scenario("listing, first page (cached)", "cached", "/catalog/products"),
    Scenario("listing, first page (uncached)", "uncached", "/catalog/products"),
    Scenario("search q=walnut (cached)", "cached", "/catalog/products?q=walnut"),
    Scenario("search q=walnut (uncached)", "uncached", "/catalog/products?q=walnut"),
    Scenario("GET /users/me (JWT + row)", "cached", "/users/me", authenticated=True, target=0.4),
]


# --- servers -------------------------------------------------------------------------------


@contextmanager
def backing_services(scratch: Path) -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("BENCH_DATABASE_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL")
    stops = []
    try:
        if not database_url:
            postgres = start_postgres(scratch / "postgres", delete_on_stop=True)
            stops.append(postgres.stop)
            postgres.create_database("keystone_bench")
            database_url = postgres.url("keystone_bench")
        if not redis_url:
            redis = start_redis(scratch / "redis", persist=False)
            stops.append(redis.stop)
            redis_url = redis.url
        yield database_url, redis_url
    finally:
        for stop in reversed(stops):
            stop()


def _env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "APP_ENV": "staging",  # JSON logs, access line per request: the production stack
        "LOG_LEVEL": "INFO",
        # What staging refuses to start without; none of it is on the measured read paths.
        "JWT_PRIVATE_KEY": private_pem(SIGNING_KEY),
        "JWT_PUBLIC_KEY": public_text(SIGNING_KEY.public_key()),  # bench/bare.py verifies with it
        "TRUSTED_HOSTS": "127.0.0.1,localhost",
        "PAYMENT_PROVIDER": "http",
        "PAYMENT_API_URL": "http://127.0.0.1:9",
        "SMTP_SECURITY": "starttls",
        # wrk speaks plain HTTP from one address: no TLS redirect, and a limit it cannot hit
        # (the limiter still runs and counts every request).
        "HTTPS_REDIRECT": "false",
        "RATE_LIMIT_DEFAULT": "100000000/minute",
        **extra,
    }


@contextmanager
def server(app: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and app
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait_until_up(process: subprocess.Popen[bytes], base: str) -> None:
    # Generous: on a loaded 2-core machine importing the app alone can take most of a minute.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited: {stderr[-2000:]}")
        try:
            if httpx.get(f"{base}/api/v1/catalog/products?limit=1", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not start")


def prepare_data(env: dict[str, str], products: int) -> None:
    for command in ("migrate", "seed"):
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "app.cli", command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    asyncio.run(_bulk_products(env["DATABASE_URL"], products))


async def _connect(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.query.get("host") or url.host,
        port=int(str(url.query.get("port") or url.port or 5432)),
        user=url.username,
        password=url.password,
        database=url.database,
    )


async def _bulk_products(database_url: str, count: int) -> None:
    connection = await _connect(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO catalog.products
                (id, sku, name, description, price, currency, stock, created_at, updated_at)
            SELECT gen_random_uuid(), 'BENCH-' || i,
                   'Bench ' || (ARRAY['walnut desk', 'oak chair', 'brass lamp', 'pine shelf'])
                       [1 + i % 4] || ' ' || i,
                   'Seeded for the benchmark, item ' || i, (i % 500) + 0.99, 'EUR', i % 50,
                   now() - i * interval '1 second', now()
            FROM generate_series(1, $1) AS i
            ON CONFLICT (sku) DO NOTHING
            """,
            count,
        )
        await connection.execute("ANALYZE catalog.products")
    finally:
        await connection.close()


async def _product_id(database_url: str) -> str:
    connection = await _connect(database_url)
    try:
        return str(
            await connection.fetchval("SELECT id FROM catalog.products WHERE sku = 'COF-ETH-250'")
        )
    finally:
        await connection.close()


# --- load ----------------------------------------------------------------------------------


def _use_wrk() -> bool:
    return os.environ.get("BENCH_TOOL", "auto") != "httpx" and shutil.which("wrk") is not None


def load(url: str, headers: dict[str, str], seconds: int, connections: int) -> Result:
    if _use_wrk():
        return _wrk(url, headers, seconds, connections)
    return asyncio.run(_httpx_loop(url, headers, seconds, connections))


def compare(
    keystone: str, bare: str, headers: dict[str, str], seconds: int, connections: int, rounds: int
) -> tuple[Result, Result]:
    """Alternate Keystone and bare runs (after a warm-up of each) and keep the median of each
    figure, so a burst of background load on a shared machine does not decide the ratio."""
    for url in (keystone, bare):
        load(url, headers, 2, connections)  # warm-up: pools filled, caches primed
    runs: dict[str, list[Result]] = {keystone: [], bare: []}
    for round_ in range(rounds):
        order = (keystone, bare) if round_ % 2 == 0 else (bare, keystone)
        for url in order:
            runs[url].append(load(url, headers, seconds, connections))
    return _median(runs[keystone]), _median(runs[bare])


def _median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def _wrk(
    url: str, headers: dict[str, str], seconds: int, connections: int, script: Path | None = None
) -> Result:
    """wrk's figures for `url`; `script` (Lua) shapes each request when given."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    # A request past wrk's timeout (2 s) is left out of its latencies: counted as an error here.
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", out)
    return Result(
        rps,
        _wrk_latency(out, "50%"),
        _wrk_latency(out, "99%"),
        sum(int(found.group(1)) for found in (errors, timeouts) if found),
    )


def _wrk_latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"\s{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _httpx_loop(url: str, headers: dict[str, str], seconds: int, connections: int) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 400

        await asyncio.gather(*(worker() for _ in range(connections)))
    cuts = statistics.quantiles(latencies, n=100)
    return Result(len(latencies) / seconds, cuts[49], cuts[98], errors)


# --- report --------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    tool = "wrk" if _use_wrk() else "httpx loop (no wrk)"
    return (
        f"{os.cpu_count()} CPUs (nproc), {cpu}, {kib / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"load generator: {tool} on the same machine"
    )


def table(
    rows: list[tuple[Scenario, Result, Result]],
    seconds: int,
    connections: int,
    rounds: int,
    load_before: str,
) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {machine()}; "
        f"{connections} connections; per scenario a 2 s warm-up, then {rounds} alternating "
        f"rounds of {seconds} s on each side, medians shown; one uvicorn worker per server; "
        f"load average before the run: {load_before}.",
        "",
        "| scenario | Keystone req/s | p50 ms | p99 ms | bare req/s | p50 ms | p99 ms "
        "| ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario, keystone, bare in rows:
        ratio = keystone.rps / bare.rps if bare.rps else 0.0
        target = "" if scenario.target is None else f">= {scenario.target}"
        verdict = (
            "" if scenario.target is None else (" met" if ratio >= scenario.target else " missed")
        )
        errors = f" ({keystone.errors} errors)" if keystone.errors else ""
        lines.append(
            f"| {scenario.name}{errors} | {keystone.rps:,.0f} | {keystone.p50_ms:.1f} "
            f"| {keystone.p99_ms:.1f} | {bare.rps:,.0f} | {bare.p50_ms:.1f} | {bare.p99_ms:.1f} "
            f"| {ratio:.2f} | {target}{verdict} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: str) -> None:
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(report)
    if DOC.exists() and START in DOC.read_text():
        text = DOC.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{START}\n{report}{END}{tail}")


def run(args: argparse.Namespace) -> list[tuple[Scenario, Result, Result]]:
    with (
        tempfile.TemporaryDirectory(prefix="keystone-bench-") as scratch,
        backing_services(Path(scratch)) as (database_url, redis_url),
    ):
        env = _env(database_url, redis_url)
        prepare_data(env, args.products)
        product = f"/catalog/products/{asyncio.run(_product_id(database_url))}"
        with (
            server("app.main:app", env) as cached,
            server("app.main:app", {**env, "CACHE_ENABLED": "false"}) as uncached,
            server("bench.bare:app", env) as bare,
        ):
            token = httpx.post(f"{cached}{API}/auth/login", data=CUSTOMER).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            rows = []
            for scenario in [s for s in SCENARIOS if args.only in s.name]:
                path = API + scenario.path.format(product=product)
                headers = auth if scenario.authenticated else {}
                base = cached if scenario.keystone == "cached" else uncached
                keystone, baseline = compare(
                    base + path, bare + path, headers, args.seconds, args.connections, args.rounds
                )
                print(f"{scenario.name}: {keystone} vs bare {baseline}", flush=True)
                rows.append((scenario, keystone, baseline))
            return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--products", type=int, default=int(os.environ.get("BENCH_PRODUCTS", 5000)))
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    args = parser.parse_args()
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    rows = run(args)
    report = table(rows, args.seconds, args.connections, args.rounds, load_before)
    print(report)
    if not args.only:
        write_report(report)


if __name__ == "__main__":
    main()
