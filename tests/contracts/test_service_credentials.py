"""The internal endpoints answer other services only: no credential looks like no endpoint at
all (404, whatever the method), a wrong one is a 401, and each caller's credential is its own,
rotated or revoked alone. They are not in the public OpenAPI document and, for a known caller,
not subject to the public edge rules (rate limits, allowed hosts, the HTTPS redirect) nor to
the maintenance switch, which pauses what the public may start, not the work a peer finishes
(docs/split-topology.md, "What the middleware does to an internal call")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.config import Settings
from app.core.security.services import credential_digest, new_service_token
from app.main import create_app
from tests.conftest import TEST_SERVICE_TOKEN, http_client
from tests.helpers import assert_problem, product_body
from tests.test_feature_flags import write_flags

PRODUCTS = "/internal/catalog/products?id=00000000-0000-0000-0000-000000000001"
CONTACT = "/internal/users/contacts/00000000-0000-0000-0000-000000000001"
SERVICE = {"X-Service-Token": TEST_SERVICE_TOKEN}


def comparable(response: httpx.Response) -> tuple[int, str, dict[str, Any], set[str]]:
    body = response.json()
    return (
        response.status_code,
        response.headers["content-type"],
        {key: value for key, value in body.items() if key not in ("instance", "request_id")},
        set(response.headers) - {"content-length", "x-request-id"},
    )


async def test_without_a_credential_an_internal_path_is_not_there(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.get("/internal/catalog/no-such-thing")
    for method, path in [("GET", PRODUCTS), ("POST", PRODUCTS), ("DELETE", CONTACT)]:
        response = await client.request(method, path)
        assert_problem(response, 404, "not-found")
        assert comparable(response) == comparable(unknown)


async def test_a_wrong_credential_is_refused(client: httpx.AsyncClient) -> None:
    for token in ("not-a-credential", TEST_SERVICE_TOKEN + "x", ""):
        response = await client.get(PRODUCTS, headers={"X-Service-Token": token})
        assert_problem(response, 401, "invalid-service-credential")


async def test_a_known_caller_is_answered(client: httpx.AsyncClient) -> None:
    response = await client.get(PRODUCTS, headers=SERVICE)
    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_bad_input_from_a_caller_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/internal/catalog/products?id=nope", headers=SERVICE)
    body = assert_problem(response, 422, "validation-error")
    assert {error["field"] for error in body["errors"]} == {"query.id.0"}


async def test_internal_endpoints_are_not_in_the_public_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths
    assert not [path for path in paths if path.startswith("/internal")]


@asynccontextmanager
async def provider(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(application):
        yield application


async def test_each_caller_has_its_own_credential_rotated_or_revoked_alone(
    settings: Settings,
) -> None:
    orders_old, orders_new, catalog_token = (new_service_token() for _ in range(3))
    callers = [
        ("orders", credential_digest(orders_old)),
        ("orders", credential_digest(orders_new)),  # mid-rotation: both work
        ("catalog", credential_digest(catalog_token)),
    ]
    async with provider(settings, service_callers=callers) as app, http_client(app) as http:
        for token in (orders_old, orders_new, catalog_token):
            response = await http.get(CONTACT, headers={"X-Service-Token": token})
            assert response.status_code == 200, response.text

    # The rotation is over: the old credential is removed, nobody else is affected.
    async with provider(settings, service_callers=callers[1:]) as app, http_client(app) as http:
        refused = await http.get(CONTACT, headers={"X-Service-Token": orders_old})
        assert_problem(refused, 401, "invalid-service-credential")
        for token in (orders_new, catalog_token):
            response = await http.get(CONTACT, headers={"X-Service-Token": token})
            assert response.status_code == 200, response.text


async def test_known_callers_pass_the_public_edge_rules(settings: Settings) -> None:
    edge = {
        "trusted_hosts": ["shop.example.com"],
        "https_redirect": True,
        "rate_limit_default": "1/minute",
    }
    async with (
        provider(settings, **edge) as app,
        http_client(app, base_url="http://catalog.shop.svc.cluster.local:8000") as http,
    ):
        for _ in range(3):  # plain HTTP, a Service's host name, past the rate limit
            response = await http.get(PRODUCTS, headers=SERVICE)
            assert response.status_code == 200, response.text
            assert "ratelimit-limit" not in response.headers
        # Without the credential the same request meets the public rules (here: the host).
        assert_problem(await http.get(PRODUCTS), 400, "invalid-host")
        assert_problem(await http.get(PRODUCTS, headers={"X-Service-Token": "x"}), 400)


@pytest.mark.usefixtures("app")  # an emptied Redis: no count left from an earlier run
async def test_callers_are_not_rate_limited_but_strangers_are(settings: Settings) -> None:
    async with (
        provider(settings, rate_limit_default="2/minute") as limited,
        http_client(limited, peer="198.51.100.7") as http,
    ):
        statuses = [(await http.get(PRODUCTS)).status_code for _ in range(3)]
        assert statuses == [404, 404, 429]
        served = [(await http.get(PRODUCTS, headers=SERVICE)).status_code for _ in range(3)]
        assert served == [200, 200, 200]


@pytest.mark.usefixtures("app")  # an emptied Redis: no count left from an earlier run
async def test_a_peers_internal_calls_leave_its_public_budget_untouched(
    settings: Settings,
) -> None:
    async with (
        provider(settings, rate_limit_default="2/minute") as limited,
        http_client(limited, peer="198.51.100.8") as http,
    ):
        served = [(await http.get(PRODUCTS, headers=SERVICE)).status_code for _ in range(10)]
        assert served == [200] * 10
        public = [(await http.get("/api/v1/catalog/products")).status_code for _ in range(3)]
        assert public == [200, 200, 429]  # the same address, limited as any client


async def test_a_pause_of_public_writes_lets_a_peer_finish_its_work(
    settings: Settings, tmp_path: Path
) -> None:
    """An audit entry recorded for a peer is the trace of a write already made (in one
    process the same call is never paused)."""
    flags = tmp_path / "flags.json"
    write_flags(flags, paused=True)
    entry = {"occurred_at": "2026-01-01T00:00:00Z", "action": "tests.paused", "outcome": "success"}
    path = f"/internal/users/audit-entries/{uuid4()}"
    async with (
        provider(settings, feature_flags_file=str(flags)) as app,
        http_client(app) as http,
    ):
        recorded = await http.put(path, json=entry, headers=SERVICE)
        assert recorded.status_code == 204, recorded.text
        public = await http.post("/api/v1/catalog/products", json=product_body())
        assert_problem(public, 503, "writes-paused")
        assert_problem(await http.put(path, json=entry), 404, "not-found")  # no credential
