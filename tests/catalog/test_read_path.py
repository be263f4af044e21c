"""What keeps the catalog's read path fast, checked structurally (speed itself is measured by
`make bench`, never asserted in a test)."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import event

from app.modules.catalog.contracts import ProductSnapshot
from app.modules.catalog.schemas import ProductCreate


def _calls(dependant: Dependant) -> list[object]:
    calls: list[object] = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        calls.extend(_calls(sub))
    return calls


def catalog_routes(app: FastAPI) -> list[APIRoute]:
    routes = [
        route
        for route in app.state.runtime.module("catalog").router.routes
        if isinstance(route, APIRoute)
    ]
    assert len(routes) >= 10, "expected every catalog route"
    return routes


def _runs_on_the_loop(call: Any) -> bool:
    function = call if inspect.isroutine(call) else type(call).__call__  # OAuth2PasswordBearer
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def test_no_catalog_route_hops_to_the_threadpool(app: FastAPI) -> None:
    # A plain `def` endpoint or dependency runs in a worker thread: profiling showed that hop
    # cost more than the whole cached read.
    sync = [
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in catalog_routes(app)
        for call in _calls(route.dependant)
        if not _runs_on_the_loop(call)
    ]
    assert sync == []


def test_the_product_read_resolves_a_single_dependency(app: FastAPI) -> None:
    [route] = [
        r
        for r in catalog_routes(app)
        if r.path.endswith("/products/{product_id}") and "GET" in r.methods
    ]
    assert [sub.call.__name__ for sub in route.dependant.dependencies] == ["product_service"]


async def test_an_orders_products_are_one_statement_of_the_snapshots_columns(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkout's call (in process, or behind GET /internal/catalog/products): no session
    nor transaction, and no column the snapshot does not carry."""
    products = app.state.runtime.module("catalog").container.products()
    lamp = await products.create_product(
        ProductCreate(sku="LEAN-1", name="Lamp", price=Decimal("9.90"), currency="EUR", stock=3)
    )
    database = app.state.runtime.module("catalog").uow.database
    on_the_driver: list[str] = []
    through_the_orm: list[str] = []
    fetch = database.fetch

    async def recorded_fetch(query: str, *args: object) -> list[dict[str, Any]]:
        on_the_driver.append(query)
        return await fetch(query, *args)

    def recorded_execute(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        through_the_orm.append(statement)

    monkeypatch.setattr(database, "fetch", recorded_fetch)
    event.listen(database.engine.sync_engine, "before_cursor_execute", recorded_execute)
    try:
        snapshots = await products.products_for_order([lamp.id, uuid4()])
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", recorded_execute)

    assert snapshots == [
        ProductSnapshot(
            product_id=lamp.id,
            sku="LEAN-1",
            name="Lamp",
            unit_price=Decimal("9.90"),
            currency="EUR",
            available=3,
        )
    ]
    # Only what reads products: the outbox relay runs beside, on both.
    assert [query for query in through_the_orm if "products" in query] == []
    [statement] = [query for query in on_the_driver if "products" in query]
    selected = statement.partition("SELECT ")[2].partition(" FROM")[0]
    assert [column.rpartition(" ")[2] for column in selected.split(", ")] == list(
        ProductSnapshot.model_fields
    )
