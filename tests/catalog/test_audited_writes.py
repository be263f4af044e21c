"""Catalog writes reach the audit log through the core port (the `audited` dependency)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.helpers import PRODUCTS, create_product, product_body


async def audit_rows(app: FastAPI, action: str) -> list[dict[str, Any]]:
    async with app.state.runtime.core.database().session() as session:
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
