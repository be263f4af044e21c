"""Every failure is RFC 9457 problem+json with a request id; never a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.core.config import Settings
from app.main import create_app
from tests.helpers import assert_problem


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nowhere"), 404)
    assert body["instance"] == "/api/v1/nowhere"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/catalog/products", "GET, POST"),
        (
            "PUT",
            "/api/v1/catalog/products/0b6c1a8e-8f0b-4d8e-9a51-3c2f3e1d7a10",
            "DELETE, GET, PATCH",
        ),
        ("OPTIONS", "/api/v1/users/me", "DELETE, GET, PATCH"),
        ("DELETE", "/api/v1/orders", "GET, POST"),
    ],
)
async def test_wrong_method_is_a_405_problem_naming_every_allowed_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    # Each method of a path is its own route; the Allow header still lists all of them.
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


async def test_validation_errors_name_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": "short", "x": 1}
    )
    body = assert_problem(response, 422)
    fields = {error["field"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"body.email", "body.password", "body.full_name", "body.x"}
    assert "body.email" in str(body["detail"])


async def test_nul_byte_in_text_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "nul@example.com",
            "password": "a-long-enough-pass",
            "full_name": "A\u0000B",
        },
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "body.full_name"  # type: ignore[index]


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    assert response.headers["x-request-id"] == "trace-abc.123"


@pytest.mark.parametrize("incoming", ["has spaces", "x" * 129, "inject\u00e9"])
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": incoming.encode("utf-8")})
    echoed = response.headers["x-request-id"]
    assert echoed != incoming
    assert len(echoed) == 32


@pytest.fixture
async def exploding_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app.add_api_route("/boom", explode)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_unexpected_error_is_a_generic_500_without_trace(
    exploding_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await exploding_client.get("/boom", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "boom-1"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    # The traceback goes to the log instead.
    logged = [r for r in caplog.records if r.name == "keystone.errors" and r.exc_info]
    assert logged
    assert logged[0].msg["request_id"] == "boom-1"  # type: ignore[index]  # support can find it
    assert "secret internal detail" in str(logged[0].exc_info[1])  # type: ignore[index]
