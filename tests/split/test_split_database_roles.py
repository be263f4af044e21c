"""In split mode each service connects to Postgres with its own module's login (and may so use
that module's schema only, tests/test_database_roles.py), never with the operator's."""

from __future__ import annotations

from sqlalchemy import text

from app.core.security.rbac import Role
from tests.databases import operator_database
from tests.helpers import PRODUCTS, product_body
from tests.split.conftest import Split, account
from tests.topology import Service


async def test_each_service_connects_with_its_own_modules_login(
    split: Split, services: dict[str, Service]
) -> None:
    staff = await account(split, "roles-staff@example.com", Role.STAFF)
    async with split.client("catalog") as catalog:  # a write: the catalog's pool is in use
        created = await catalog.post(PRODUCTS, json=product_body(), headers=staff.headers)
    assert created.status_code == 201, created.text
    async with operator_database(split.runtime).session() as session:
        rows = await session.execute(
            text(
                "SELECT DISTINCT application_name, usename FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'keystone-%'"
            )
        )
        logins = {(name, user) for name, user in rows}
    assert logins == {(f"keystone-{module}", f"keystone_{module}") for module in services}
