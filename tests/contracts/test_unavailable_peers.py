"""A module served elsewhere being down, as the callers of this process see it: a checkout is a
503 problem with Retry-After (never a 500), a job that needs the peer runs again later, and an
admin action's audit entry waits in the users queue instead of being lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import httpx
import pytest
from arq import Retry
from asgi_lifespan import LifespanManager
from dependency_injector import providers
from fastapi import FastAPI
from sqlalchemy import text

from app.core.config import Settings
from app.core.jobs import Job
from app.core.peers import PeerUnavailableError
from app.core.security.keys import signing_keys
from app.core.security.rbac import Role
from app.main import create_app
from app.worker.functions import _attempt
from devtools.servers import free_port
from tests.conftest import http_client, queued_jobs, run_worker_burst
from tests.databases import operator_database
from tests.helpers import ORDERS, PRODUCTS, assert_problem, order_body, product_body
from tests.settings import change_settings

NOBODY = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on


@asynccontextmanager
async def hosting(
    settings: Settings, modules: list[str], *, knows_users_keys: bool = True, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An API process hosting only `modules`; the others are at NOBODY."""
    elsewhere = {f"{name}_url": NOBODY for name in ("users", "catalog", "orders")}
    values = {
        "app_modules": modules,
        "peer_retry_attempts": 2,
        "peer_retry_wait_initial_s": 0.01,
        **elsewhere,
        **overrides,
    }
    application = create_app(change_settings(settings, **values))
    if "users" not in modules and knows_users_keys:
        # Users' public keys as this process would have fetched them before users went away
        # (RemoteKeys keeps them), so the peer under test is the only one missing.
        keys = signing_keys(settings)
        application.state.core.verification_keys.override(providers.Object(keys))
    async with LifespanManager(application), http_client(application) as http:
        yield http


def bearer(app: FastAPI, role: Role) -> dict[str, str]:
    issuer = app.state.runtime.module("users").container.issuer()
    token = issuer.issue_access_token(uuid4(), frozenset({role}), uuid4())
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_under_a_key_not_yet_fetched_is_a_503_while_users_is_away(
    settings: Settings, app: FastAPI
) -> None:
    """Users' JWKS cannot be fetched: the token can be neither accepted nor refused."""
    customer = bearer(app, Role.CUSTOMER)
    async with hosting(settings, ["orders"], knows_users_keys=False) as orders:
        response = await orders.get(ORDERS, headers=customer)
    assert_problem(response, 503, "peer-unavailable")
    assert int(response.headers["retry-after"]) >= 1


async def test_a_checkout_without_its_catalog_is_a_503_with_retry_after(
    settings: Settings, app: FastAPI
) -> None:
    customer = bearer(app, Role.CUSTOMER)
    # Users is away too; with no verified-email rule, the catalog is the peer checkout needs.
    async with hosting(
        settings, ["orders"], peer_breaker_threshold=4, require_verified_email_for_orders=False
    ) as orders_only:
        body = order_body((str(uuid4()), 1))
        first = await orders_only.post(ORDERS, json=body, headers=keyed_headers(customer))
        problem = assert_problem(first, 503, "peer-unavailable")
        assert "catalog" in problem["detail"]
        assert first.headers["retry-after"] == "2"

        # Two failed calls of two attempts each: the circuit is open, the answer is at once.
        second = await orders_only.post(ORDERS, json=body, headers=keyed_headers(customer))
        assert_problem(second, 503, "peer-unavailable")
        third = await orders_only.post(ORDERS, json=body, headers=keyed_headers(customer))
        assert_problem(third, 503, "peer-unavailable")
        assert 1 <= int(third.headers["retry-after"]) <= int(settings.peer_breaker_reset_s)

    async with operator_database(app.state.runtime).session() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders.orders")) == 0


def keyed_headers(auth: dict[str, str]) -> dict[str, str]:
    return {**auth, "Idempotency-Key": str(uuid4())}


async def test_a_job_that_needs_an_unavailable_peer_runs_again_later() -> None:
    async def send_email(order_id: str) -> str:
        raise PeerUnavailableError("users", "ConnectError")

    job = Job(name="orders.send_order_email", run=send_email, max_tries=3, retry_base_s=1)
    with pytest.raises(Retry):
        await _attempt(job, 1, ("order",))


async def test_an_audit_entry_waits_in_the_users_queue_while_users_is_down(
    settings: Settings, app: FastAPI
) -> None:
    staff = bearer(app, Role.STAFF)
    async with hosting(settings, ["catalog"]) as catalog_only:
        created = await catalog_only.post(PRODUCTS, json=product_body(), headers=staff)
        assert created.status_code == 201, created.text  # the action is not refused

    (queued,) = await queued_jobs(settings, "users")
    assert queued.function == "users.record_audit_entry"

    await run_worker_burst(settings)  # users' worker, users reachable again

    async with operator_database(app.state.runtime).session() as session:
        rows = (
            await session.execute(text("SELECT action, outcome, entry_id FROM users.audit_log"))
        ).all()
    assert [(row.action, row.outcome, str(row.entry_id)) for row in rows] == [
        ("catalog.product_create", "success", queued.args[0])
    ]
