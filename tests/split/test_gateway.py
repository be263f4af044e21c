"""nginx in front of the three services (deploy/gateway/nginx.conf.template): each public
prefix reaches its module's service, a request id is made when the caller sent none and passed
on when it did, the client's address reaches the services through X-Forwarded-For (the
gateway is a trusted proxy), and `/internal/` or any other path is a 404 at the gateway, even
with a valid service credential."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.security.rbac import Role
from devtools.gateway import Gateway
from tests.conftest import eventually
from tests.helpers import ORDERS, PRODUCTS
from tests.split.conftest import Split, account
from tests.split.test_split_services import access_lines, new_product
from tests.tools import require_tool
from tests.topology import PASSWORD, Service, gateway_in_front


@pytest.fixture(scope="module")
def gateway(split: Split, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    nginx = require_tool("nginx", "nginx")
    with gateway_in_front(nginx, split.services, tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
async def through(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        yield client


async def test_public_prefixes_reach_their_service(
    split: Split, services: dict[str, Service], through: httpx.AsyncClient
) -> None:
    staff = await account(split, "staff-g1@example.com", Role.STAFF)
    await account(split, "customer-g1@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, name="Gateway lamp")

    login = await through.post(
        "/api/v1/auth/login",
        data={"username": "customer-g1@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    assert login.status_code == 200, login.text
    customer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = await through.get("/api/v1/users/me", headers=customer)
    assert (me.status_code, me.json()["email"]) == (200, "customer-g1@example.com")
    read = await through.get(f"{PRODUCTS}/{product['id']}")
    assert (read.status_code, read.json()["name"]) == (200, "Gateway lamp")
    orders = await through.get(ORDERS, headers=customer)
    assert (orders.status_code, orders.json()["items"]) == (200, [])
    assert (await through.get("/docs")).status_code == 200

    # The login's audit entry names the client, not the gateway.
    admin = await account(split, "admin-g1@example.com", Role.ADMIN)
    audit = await through.get("/api/v1/admin/audit-log?limit=100", headers=admin.headers)
    assert audit.status_code == 200, audit.text
    logins = [
        entry["ip"]
        for entry in audit.json()["items"]
        if entry["action"] == "auth.login" and entry["outcome"] == "success"
    ]
    assert "203.0.113.7" in logins


async def test_a_request_id_is_made_or_passed_on(
    split: Split, services: dict[str, Service], through: httpx.AsyncClient
) -> None:
    made = await through.get(f"{PRODUCTS}?limit=1")
    assert made.status_code == 200, made.text
    passed = await through.get(f"{PRODUCTS}?limit=2", headers={"X-Request-ID": "from-the-client"})
    assert passed.headers["x-request-id"] == "from-the-client"

    # The access line is written once the response has gone out, so it may trail it.
    async def both_logged() -> bool:
        seen = {line["request_id"] for line in access_lines(services["catalog"])}
        return {made.headers["x-request-id"], "from-the-client"} <= seen

    await eventually(both_logged, timeout_s=5)


@pytest.mark.parametrize(
    "path",
    ["/internal/catalog/products?id=1", "/internal/users/contacts/1", "/readyz", "/metrics", "/"],
)
async def test_internal_and_unlisted_paths_are_404_at_the_gateway(
    services: dict[str, Service], through: httpx.AsyncClient, path: str
) -> None:
    # The credential the catalog accepts from orders: the gateway routes by path, not by it.
    credential = services["orders"].env["SERVICE_TOKEN"]
    response = await through.get(path, headers={"X-Service-Token": credential})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
