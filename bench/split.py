"""`make bench-split`: checkout (`POST /orders`) with the catalog in process vs over HTTP.

Two single-worker uvicorn servers of orders on the same data: one hosting catalog and orders
(the catalog facade is a function call), one hosting orders alone with CATALOG_URL pointing at a
third server hosting the catalog (the facade is `CatalogClient` over HTTP). Neither relays
events (each hosts part of the modules), so both do the same work but the facade call. wrk posts
checkouts with fresh Idempotency-Keys, alternating the two sides round by round; then the facade
call itself is timed one call at a time, in process and over HTTP, for its p50 overhead. The
table goes to stdout and bench/results/split.md. A fourth server hosts users, whose public
keys (JWKS) the orders and catalog servers verify the customer's token with.
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
from pathlib import Path
from uuid import UUID

from app.bootstrap import build_runtime
from app.core.config import Settings
from app.core.peers import PeerConnections
from app.core.security.keys import SigningKeys
from app.core.security.rbac import Role
from app.core.security.services import credential_digest, new_service_token
from app.core.security.tokens import TokenIssuer
from app.modules.catalog.client import CatalogClient
from bench.run import (
    ROOT,
    SIGNING_KEY,
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

REPORT = ROOT / "bench" / "results" / "split.md"
TARGET = 0.7
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


def _checkouts(
    sides: dict[str, str], scratch: Path, body: str, token: str, args: argparse.Namespace
) -> dict[str, Result]:
    runs: dict[str, list[Result]] = {name: [] for name in sides}
    for url in sides.values():  # warm-up: pools filled on both sides
        _wrk(url, {}, 2, args.connections, _post_script(body, token, scratch))
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            script = _post_script(body, token, scratch)
            runs[name].append(_wrk(sides[name], {}, args.seconds, args.connections, script))
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", flush=True)
    return {name: _median(results) for name, results in runs.items()}


async def _facade_p50s(settings: Settings, product: UUID, calls: int) -> tuple[float, float]:
    """p50 of one `products_for_order` call, in process and over HTTP, one call at a time."""
    runtime = build_runtime(settings)
    peers = PeerConnections(settings)
    local = runtime.module("catalog").container.products()
    remote = CatalogClient(peers.peer("catalog"))
    timings: dict[str, list[float]] = {"local": [], "remote": []}
    try:
        for _ in range(calls):
            for name, facade in (("local", local), ("remote", remote)):
                started = time.perf_counter()
                assert await facade.products_for_order([product])
                timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        await peers.close()
        await runtime.stop()
    return statistics.median(timings["local"]), statistics.median(timings["remote"])


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
        )
        prepare_data(env, 100)
        product = asyncio.run(_product_id(database_url))
        with (
            server("app.main:app", {**env, "APP_MODULES": "users"}) as users,
            server("app.main:app", {**_verifier(env, users), "APP_MODULES": "catalog"}) as catalog,
        ):
            peer_env = {**_verifier(env, users), "CATALOG_URL": catalog}
            with (
                server("app.main:app", {**peer_env, "APP_MODULES": "catalog,orders"}) as local,
                server("app.main:app", {**peer_env, "APP_MODULES": "orders"}) as remote,
            ):
                settings = Settings(_env_file=None, **_settings_of(peer_env))  # type: ignore[call-arg]
                keys = SigningKeys(settings.jwt_key_id, SIGNING_KEY, {})
                token = TokenIssuer(settings, keys).issue_access_token(
                    uuid.uuid4(), frozenset({Role.CUSTOMER}), uuid.uuid4()
                )
                sides = {"catalog in process": local, "catalog over HTTP": remote}
                urls = {name: f"{url}/api/v1/orders" for name, url in sides.items()}
                results = _checkouts(urls, scratch, ORDER % product, token, args)
                p50s = asyncio.run(_facade_p50s(settings, UUID(product), args.calls))
    return _report(results, p50s, args, load_before)


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


def _report(
    results: dict[str, Result], p50s: tuple[float, float], args: argparse.Namespace, load: str
) -> str:
    local, remote = results["catalog in process"], results["catalog over HTTP"]
    ratio = remote.rps / local.rps if local.rps else 0.0
    verdict = "met" if ratio >= TARGET else "missed"
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {machine()}; "
        f"{args.connections} connections; per side a 2 s warm-up, then {args.rounds} alternating "
        f"rounds of {args.seconds} s, medians shown; load average before the run: {load}.",
        "",
        "| checkout `POST /orders` | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} |"
            for name, r in results.items()
        ),
        "",
        f"Ratio over HTTP / in process: **{ratio:.2f}** (target >= {TARGET}: {verdict}).",
        f"One `products_for_order` call, p50 of {args.calls} sequential calls: in process "
        f"{p50s[0]:.2f} ms, over HTTP {p50s[1]:.2f} ms: **{p50s[1] - p50s[0]:.2f} ms** overhead.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    report = run(args)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
