"""Users, catalog and orders as three services: a checkout reaches the catalog over HTTP, the
catalog's and orders' audit entries reach users' audit log, a person's export includes what
orders holds, and a checkout while the catalog is down is a 503 that heals once it is back."""

from __future__ import annotations

import json
from uuid import uuid4

from app.core.security.rbac import Role
from tests.conftest import eventually
from tests.helpers import ORDERS, PRODUCTS, assert_problem, order_body, product_body
from tests.split.conftest import Split, account
from tests.topology import Person, Service


async def new_product(split: Split, staff: Person, **fields: object) -> dict[str, object]:
    async with split.client("catalog") as catalog:
        response = await catalog.post(PRODUCTS, json=product_body(**fields), headers=staff.headers)
    assert response.status_code == 201, response.text
    product: dict[str, object] = response.json()
    return product


def keyed(person: Person, request_id: str | None = None) -> dict[str, str]:
    headers = {**person.headers, "Idempotency-Key": str(uuid4())}
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


def access_lines(service: Service) -> list[dict[str, object]]:
    lines = []
    for line in service.log.read_text().splitlines():
        if line.startswith("{") and '"keystone.access"' in line:
            lines.append(json.loads(line))
    return lines


async def test_a_checkout_reaches_the_catalog_over_http(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-1@example.com", Role.STAFF)
    customer = await account(split, "customer-1@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, name="Oak shelf", price="40.00", currency="EUR")

    async with split.client("orders") as orders:
        body = order_body((str(product["id"]), 2))
        placed = await orders.post(ORDERS, json=body, headers=keyed(customer, "split-checkout-1"))
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert (order["total"], order["currency"], order["status"]) == ("80.00", "EUR", "pending")
        assert [(line["sku"], line["name"], line["unit_price"]) for line in order["lines"]] == [
            (product["sku"], "Oak shelf", "40.00")
        ]

        unknown = await orders.post(
            ORDERS, json=order_body((str(uuid4()), 1)), headers=keyed(customer)
        )
        assert_problem(unknown, 422, "unknown-products")

    # The catalog answered the orders service, under the checkout's own request id (its
    # access line is written once its response has gone out, so it may trail the checkout).
    async def catalog_logged_the_call() -> bool:
        calls = [
            (line["request_id"], line["status"])
            for line in access_lines(services["catalog"])
            if line["path"] == "/internal/catalog/products"
        ]
        return ("split-checkout-1", 200) in calls

    await eventually(catalog_logged_the_call, timeout_s=5)


async def test_every_services_audit_entries_reach_users(
    split: Split, services: dict[str, Service]
) -> None:
    admin = await account(split, "admin-2@example.com", Role.ADMIN)
    staff = await account(split, "staff-2@example.com", Role.STAFF)
    customer = await account(split, "customer-2@example.com", Role.CUSTOMER)
    product = await new_product(split, staff)
    async with split.client("orders") as orders:
        placed = await orders.post(
            ORDERS, json=order_body((str(product["id"]), 1)), headers=keyed(customer)
        )
        assert placed.status_code == 201, placed.text
        ship = await orders.post(f"{ORDERS}/{placed.json()['id']}/ship", headers=staff.headers)
        assert_problem(ship, 409, "illegal-transition")  # not confirmed: refused, and audited

    async with split.client("users") as users:
        response = await users.get("/api/v1/admin/audit-log?limit=100", headers=admin.headers)
    assert response.status_code == 200, response.text
    entries = {(e["action"], e["outcome"]) for e in response.json()["items"]}
    assert {("catalog.product_create", "success"), ("orders.ship", "failure")} <= entries


async def test_a_persons_export_includes_what_orders_holds(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-3@example.com", Role.STAFF)
    customer = await account(split, "customer-3@example.com", Role.CUSTOMER)
    product = await new_product(split, staff, price="9.99")
    async with split.client("orders") as orders:
        placed = await orders.post(
            ORDERS, json=order_body((str(product["id"]), 3)), headers=keyed(customer)
        )
        assert placed.status_code == 201, placed.text

    async with split.client("users") as users:
        response = await users.get("/api/v1/users/me/export", headers=customer.headers)
    assert response.status_code == 200, response.text
    modules = response.json()["modules"]
    assert modules["users"]["account"]["email"] == "customer-3@example.com"
    (order,) = modules["orders"]["orders"]
    assert (order["id"], order["total"]) == (placed.json()["id"], "29.97")


async def test_a_checkout_while_the_catalog_is_down_is_a_503_until_it_is_back(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "staff-4@example.com", Role.STAFF)
    customer = await account(split, "customer-4@example.com", Role.CUSTOMER)
    product = await new_product(split, staff)
    body = order_body((str(product["id"]), 1))

    services["catalog"].stop()
    async with split.client("orders") as orders:
        for _ in range(3):  # the last ones fail fast: the circuit is open
            down = await orders.post(ORDERS, json=body, headers=keyed(customer))
            assert_problem(down, 503, "peer-unavailable")
            assert int(down.headers["retry-after"]) >= 1

        services["catalog"].start()
        services["catalog"].ready()

        async def placed() -> bool:
            response = await orders.post(ORDERS, json=body, headers=keyed(customer))
            assert response.status_code in (201, 503), response.text
            return response.status_code == 201

        await eventually(placed, timeout_s=30, interval_s=0.5)
