"""Edge protection: security headers on every response, HTTPS and HSTS in prod, allowed hosts,
bounded request bodies, and no response that leaks a secret."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.security.ed25519 import new_signing_key, private_pem
from app.main import create_app
from tests.conftest import Servers, http_client, leaked_fields, make_settings
from tests.helpers import CATEGORIES, assert_problem

REGISTER = "/api/v1/auth/register"
PROD = {
    "app_env": "prod",
    "jwt_private_key": private_pem(new_signing_key()),
    "trusted_hosts": ["api.example.com", "*.example.org"],
    "trusted_proxies": ["10.0.0.0/8"],
    "payment_provider": "http",
    "payment_api_url": "https://payments.example.com",
}
AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def app_with(servers: Servers, database_url: str) -> AppFactory:
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[FastAPI]:
        app = create_app(make_settings(database_url, servers.redis_url, **overrides))

        async def explode() -> None:
            raise RuntimeError("boom")

        app.add_api_route("/boom", explode)
        async with LifespanManager(app):
            yield app

    return build


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", CATEGORIES, 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/docs", 200),
        ("GET", "/docs/oauth2-redirect", 200),
        ("GET", "/api/v1/nowhere", 404),
        ("GET", "/redoc", 404),
        ("DELETE", CATEGORIES, 405),
        ("GET", "/api/v1/users/me", 401),
        ("POST", REGISTER, 422),
        ("GET", "/boom", 500),
    ],
)
async def test_every_response_carries_the_security_headers(
    app_with: AppFactory, method: str, path: str, status: int
) -> None:
    async with app_with() as app, http_client(app) as http:
        response = await http.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == status
    assert_security_headers(response)
    assert "strict-transport-security" not in response.headers  # dev/test: no HSTS


async def test_api_responses_allow_nothing_to_load(client: httpx.AsyncClient) -> None:
    response = await client.get(CATEGORIES)
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def _sources(csp: str, directive: str) -> set[str]:
    for part in csp.split(";"):
        name, *values = part.split()
        if name == directive:
            return set(values)
    raise AssertionError(f"no {directive} in {csp}")


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" if parsed.host else "'self'"


async def test_swagger_ui_assets_come_from_the_app_and_its_csp_names_no_other_origin(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    csp = response.headers["content-security-policy"]
    scripts = re.findall(r'<script src="([^"]+)"', response.text)
    styles = re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', response.text)
    icons = re.findall(r'<link rel="shortcut icon" href="([^"]+)"', response.text)
    # The page still loads what this test reads, all of it from this origin...
    assert len(scripts) == len(styles) == len(icons) == 1
    assert {_origin(url) for url in [*scripts, *styles, *icons]} == {"'self'"}
    for asset in [*scripts, *styles, *icons]:
        served = await client.get(asset)
        assert served.status_code == 200
        assert len(served.content) > 1_000
    # ...and the CSP allows no other origin for anything.
    assert not re.search(r"https?:", csp)
    # Its inline start-up script runs because its hash is listed; no other inline script would.
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(inline) == 1
    assert _sha256(inline[0]) in _sources(csp, "script-src")
    assert "'unsafe-inline'" not in _sources(csp, "script-src")
    assert "'self'" in _sources(csp, "connect-src")


async def test_the_oauth2_redirect_page_script_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    [inline] = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    script_src = _sources(response.headers["content-security-policy"], "script-src")
    assert script_src == {"'self'", _sha256(inline)}


def _sha256(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"'sha256-{digest}'"


async def test_prod_redirects_plain_http_from_the_proxy_to_https(app_with: AppFactory) -> None:
    async with (
        app_with(**PROD) as app,
        http_client(app, peer="10.0.0.2", base_url="http://api.example.com") as proxy,
    ):
        response = await proxy.post(
            "/api/v1/catalog/categories?x=1", headers={"X-Forwarded-Proto": "http"}
        )
    assert response.status_code == 308  # method and body kept
    assert response.headers["location"] == "https://api.example.com/api/v1/catalog/categories?x=1"
    assert_security_headers(response)


async def test_prod_serves_https_from_the_proxy_with_hsts(app_with: AppFactory) -> None:
    async with (
        app_with(**PROD) as app,
        http_client(app, peer="10.0.0.2", base_url="http://api.example.com") as proxy,
    ):
        response = await proxy.get(CATEGORIES, headers={"X-Forwarded-Proto": "https"})
        error = await proxy.get("/api/v1/nowhere", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    hsts = "max-age=31536000; includeSubDomains"
    assert response.headers["strict-transport-security"] == hsts
    assert error.status_code == 404
    assert error.headers["strict-transport-security"] == hsts


async def test_prod_ignores_forwarded_proto_from_an_untrusted_peer(app_with: AppFactory) -> None:
    async with (
        app_with(**PROD) as app,
        http_client(app, peer="203.0.113.5", base_url="http://api.example.com") as http,
    ):
        response = await http.get(CATEGORIES, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 308
    assert response.headers["location"].startswith("https://api.example.com/")


async def test_prod_does_not_redirect_the_probes(app_with: AppFactory) -> None:
    async with app_with(**PROD) as app, http_client(app, base_url="http://10.1.2.3:8000") as http:
        response = await http.get("/healthz")
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["api.example.com", "API.example.com:443", "eu.example.org"])
async def test_allowed_hosts_are_served(app_with: AppFactory, host: str) -> None:
    async with (
        app_with(trusted_hosts=PROD["trusted_hosts"]) as app,
        http_client(app, base_url=f"http://{host}") as http,
    ):
        assert (await http.get(CATEGORIES)).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "example.org", "api.example.com.evil.example"])
async def test_a_host_not_allowed_is_a_400_problem(app_with: AppFactory, host: str) -> None:
    async with (
        app_with(trusted_hosts=PROD["trusted_hosts"]) as app,
        http_client(app, base_url=f"http://{host}") as http,
    ):
        response = await http.get(CATEGORIES)
    body = assert_problem(response, 400, "invalid-host")
    assert body["detail"] == "Host header not allowed"
    assert_security_headers(response)


async def test_a_declared_body_over_the_limit_is_a_413_problem(app_with: AppFactory) -> None:
    big = {"email": "a@example.com", "password": "x" * 2_000, "full_name": "A"}
    async with app_with(max_body_bytes=1_024) as app, http_client(app) as http:
        response = await http.post(REGISTER, json=big)
        # A route that never reads its body still refuses the upload.
        ignored_body = await http.post("/api/v1/nowhere", content=b"x" * 2_000)
    body = assert_problem(response, 413)
    assert "1024 bytes" in body["detail"]
    assert_security_headers(response)
    assert_problem(ignored_body, 413)


async def test_a_chunked_body_over_the_limit_is_a_413_problem(app_with: AppFactory) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'", "full_name": "A"}'

    async with app_with(max_body_bytes=1_024) as app, http_client(app) as http:
        response = await http.post(
            REGISTER, content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert_security_headers(response)


async def test_a_body_within_the_limit_is_served(app_with: AppFactory) -> None:
    body = {"email": "a@example.com", "password": "a-long-passphrase", "full_name": "A"}
    async with app_with(max_body_bytes=1_024) as app, http_client(app) as http:
        assert (await http.post(REGISTER, json=body)).status_code == 201


async def test_the_leak_check_catches_a_leaking_response() -> None:
    # The check every in-process response goes through (tests/conftest.py) must be able to fail.
    leaky = FastAPI()

    @leaky.get("/leak")
    async def leak() -> dict[str, Any]:
        return {"items": [{"id": 1, "profile": {"password_hash": "$argon2id$..."}}]}

    transport = httpx.ASGITransport(app=leaky)  # any client, not only the fixtures' ones
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(AssertionError, match="password_hash"):
            await http.get("/leak")
    assert leaked_fields({"token_hash": 1, "a": [{"is_active": True}]}) == {
        "token_hash",
        "is_active",
    }
