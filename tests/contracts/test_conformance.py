"""One test body per promise of a facade Protocol, run against the provider's service in process
and against its HTTP client over a real socket (tests/contracts/conftest.py): whichever a module
is handed, it gets the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from fastapi import FastAPI
from sqlalchemy import text

from app.core.audit import AuditEntry, Origin, Outcome
from app.core.security.rbac import Principal, Role
from app.modules.catalog.contracts import ProductSnapshot
from app.modules.catalog.schemas import MAX_SNAPSHOT_IDS, ProductCreate
from app.modules.orders.service import Checkout
from app.modules.users.contracts import Contact
from tests.contracts.conftest import Facades
from tests.databases import operator_database

ADMIN = Principal(UUID(int=1), frozenset({Role.ADMIN}))


async def new_product(app: FastAPI, sku: str, price: str = "12.50") -> UUID:
    products = app.state.runtime.module("catalog").container.products()
    created = await products.create_product(
        ProductCreate(sku=sku, name=f"Lamp {sku}", price=Decimal(price), currency="EUR", stock=5)
    )
    product_id: UUID = created.id
    return product_id


async def archived_product(app: FastAPI, sku: str) -> UUID:
    product_id = await new_product(app, sku)
    await app.state.runtime.module("catalog").container.products().archive_product(product_id)
    return product_id


async def new_account(app: FastAPI, name: str, *, verified: bool = False) -> UUID:
    accounts = app.state.runtime.module("users").container.accounts()
    user = await accounts.register(
        f"{name}@example.com", "correct-horse-battery", name.title(), email_verified=verified
    )
    user_id: UUID = user.id
    return user_id


# --- CatalogFacade -------------------------------------------------------------------------


async def test_products_for_order_are_the_orderable_ones(app: FastAPI, facades: Facades) -> None:
    lamp = await new_product(app, "LAMP-1", "12.50")
    gone = await archived_product(app, "LAMP-2")
    unknown = uuid4()

    snapshots = await facades.catalog.products_for_order([lamp, gone, unknown])

    assert snapshots == [
        ProductSnapshot(
            product_id=lamp,
            sku="LAMP-1",
            name="Lamp LAMP-1",
            unit_price=Decimal("12.50"),
            currency="EUR",
            archived=False,
            available=5,
        )
    ]


async def test_resolved_products_include_archived_ones(app: FastAPI, facades: Facades) -> None:
    lamp = await new_product(app, "LAMP-3")
    gone = await archived_product(app, "LAMP-4")

    snapshots = await facades.catalog.resolve_products([gone, uuid4(), lamp])

    assert {(s.product_id, s.archived) for s in snapshots} == {(lamp, False), (gone, True)}


async def test_no_product_ids_no_products(facades: Facades) -> None:
    assert await facades.catalog.products_for_order([]) == []
    assert await facades.catalog.resolve_products([]) == []


async def test_more_ids_than_one_call_carries(app: FastAPI, facades: Facades) -> None:
    known = [await new_product(app, f"MANY-{n}") for n in range(3)]
    asked = [*known[:1], *(uuid4() for _ in range(MAX_SNAPSHOT_IDS + 5)), *known[1:], known[0]]

    snapshots = await facades.catalog.products_for_order(asked)

    assert sorted(s.product_id for s in snapshots) == sorted(known)


# --- UsersFacade ---------------------------------------------------------------------------


async def test_contact_of_an_active_account(app: FastAPI, facades: Facades) -> None:
    ada = await new_account(app, "ada")

    assert await facades.users.contact(ada) == Contact(
        user_id=ada, email="ada@example.com", full_name="Ada"
    )


async def test_no_contact_for_unknown_or_disabled_accounts(app: FastAPI, facades: Facades) -> None:
    bob = await new_account(app, "bob")
    await app.state.runtime.module("users").container.admin().disable(ADMIN, bob)

    assert await facades.users.contact(bob) is None
    assert await facades.users.contact(uuid4()) is None


async def test_email_verified_only_for_an_active_account_that_proved_it(
    app: FastAPI, facades: Facades
) -> None:
    ada = await new_account(app, "ada", verified=True)
    bob = await new_account(app, "bob")
    eve = await new_account(app, "eve", verified=True)
    await app.state.runtime.module("users").container.admin().disable(ADMIN, eve)

    assert await facades.users.email_verified(ada) is True
    assert await facades.users.email_verified(bob) is False
    assert await facades.users.email_verified(eve) is False
    assert await facades.users.email_verified(uuid4()) is False


# --- AuditTrail ----------------------------------------------------------------------------


async def audit_rows(app: FastAPI) -> list[dict[str, object]]:
    async with operator_database(app.state.runtime).session() as session:
        rows = await session.execute(
            text(
                "SELECT entry_id, occurred_at, actor_id, action, target, outcome, ip, request_id,"
                " detail FROM users.audit_log ORDER BY id"
            )
        )
        return [dict(row._mapping) for row in rows]


async def test_an_audit_entry_is_stored_with_everything_it_says(
    app: FastAPI, facades: Facades
) -> None:
    actor = uuid4()
    entry = AuditEntry(
        "catalog.product_create",
        Outcome.FAILURE,
        actor,
        "POST /api/v1/catalog/products",
        Origin(ip="203.0.113.9", request_id="req-123"),
        {"error": "sku-taken"},
        occurred_at=datetime.now(UTC) - timedelta(seconds=30),
    )

    await facades.audit.record(entry)

    assert await audit_rows(app) == [
        {
            "entry_id": entry.entry_id,
            "occurred_at": entry.occurred_at,
            "actor_id": actor,
            "action": "catalog.product_create",
            "target": "POST /api/v1/catalog/products",
            "outcome": "failure",
            "ip": "203.0.113.9",
            "request_id": "req-123",
            "detail": {"error": "sku-taken"},
        }
    ]


async def test_an_audit_entry_recorded_twice_is_stored_once(app: FastAPI, facades: Facades) -> None:
    entry = AuditEntry("orders.ship", Outcome.SUCCESS, uuid4(), "POST /api/v1/orders/x/ship")

    await facades.audit.record(entry)
    await facades.audit.record(entry)  # a retried call
    await facades.audit.record(AuditEntry("orders.ship", Outcome.SUCCESS))  # another entry

    assert [row["entry_id"] for row in await audit_rows(app)][:1] == [entry.entry_id]
    assert len(await audit_rows(app)) == 2


# --- PersonalDataSource (orders) -----------------------------------------------------------


async def test_orders_part_of_an_export(app: FastAPI, facades: Facades) -> None:
    lamp = await new_product(app, "EXPORT-1", "20.00")
    customer = await new_account(app, "cleo", verified=True)
    orders = app.state.runtime.module("orders").container.orders()
    placed = await orders.place_order(
        Checkout(
            customer_id=customer,
            idempotency_key="export-1",
            items=[(lamp, 2)],
            shipping_address={"name": "Ada", "line1": "1 Main St", "city": "Berlin"},
            payment_method="pm_card_visa",
        )
    )

    export = await facades.orders_personal_data.export(customer)

    (order,) = export["orders"]
    assert order["id"] == str(placed.order.id)
    assert order["total"] == "40.00"
    assert order["shipping_address"]["name"] == "Ada"
    assert order["lines"] == [
        {"sku": "EXPORT-1", "name": "Lamp EXPORT-1", "quantity": 2, "unit_price": "20.00"}
    ]
    assert await facades.orders_personal_data.export(uuid4()) == {"orders": []}
