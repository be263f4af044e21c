"""What keeps the catalog's read path fast, checked structurally (speed itself is measured by
`make bench`, never asserted in a test)."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute


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
