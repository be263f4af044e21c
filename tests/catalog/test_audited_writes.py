"""Catalog writes reach the audit log through the core port (the `audited` dependency)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.databases import operator_database
from tests.helpers import CATEGORIES, PRODUCTS, create_product, product_body


async def audit_rows(app: FastAPI, action: str) -> list[dict[str, Any]]:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text("SELECT * FROM users.audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(row._mapping) for row in rows]


async def test_product_creation_is_audited_with_its_outcome(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    staff = await make_user(Role.STAFF)
    created = await create_product(client, staff, sku="AUD-1")
    duplicate = await client.post(PRODUCTS, json=product_body(sku="AUD-1"), headers=staff.headers)
    assert duplicate.status_code == 409
    invalid = await client.post(PRODUCTS, json={"sku": "AUD-2"}, headers=staff.headers)
    assert invalid.status_code == 422

    rows = await audit_rows(app, "catalog.product_create")
    assert [(r["outcome"], r["detail"]) for r in rows] == [
        ("success", {}),
        ("failure", {"error": "sku-taken"}),
    ]  # an invalid body never reaches the endpoint, so it is not a write attempt
    assert {str(r["actor_id"]) for r in rows} == {staff.id}
    assert {r["target"] for r in rows} == {f"POST {PRODUCTS}"}
    assert rows[0]["request_id"] is not None
    assert created["sku"] == "AUD-1"


async def test_a_refused_caller_writes_nothing_to_the_log(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    customer = await make_user()
    response = await client.post(PRODUCTS, json=product_body(), headers=customer.headers)
    assert response.status_code == 403
    assert await audit_rows(app, "catalog.product_create") == []


async def test_every_catalog_write_is_audited(
    client: httpx.AsyncClient, make_user: UserFactory, app: FastAPI
) -> None:
    staff = await make_user(Role.STAFF)
    product = await create_product(client, staff)
    category = (await client.post(CATEGORIES, json={"name": "Teas"}, headers=staff.headers)).json()
    writes = [
        ("PATCH", f"{PRODUCTS}/{product['id']}", {"name": "Renamed"}),
        ("PUT", f"{PRODUCTS}/{product['id']}/stock", {"on_hand": 3}),
        ("DELETE", f"{PRODUCTS}/{product['id']}", None),
        ("PATCH", f"{CATEGORIES}/{category['id']}", {"name": "Green teas"}),
        ("DELETE", f"{CATEGORIES}/{category['id']}", None),
    ]
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=staff.headers)
        assert response.status_code < 300, (method, path, response.text)

    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text(
                "SELECT action, outcome, target FROM users.audit_log "
                "WHERE action LIKE 'catalog.%' ORDER BY id"
            )
        )
        logged = [tuple(row) for row in rows]
    assert logged == [
        ("catalog.product_create", "success", f"POST {PRODUCTS}"),
        ("catalog.category_create", "success", f"POST {CATEGORIES}"),
        *[
            (action, "success", f"{method} {path}")
            for action, (method, path, _) in zip(
                [
                    "catalog.product_update",
                    "catalog.stock_set",
                    "catalog.product_archive",
                    "catalog.category_update",
                    "catalog.category_delete",
                ],
                writes,
                strict=True,
            )
        ],
    ]
