"""Logs are JSON lines carrying the request id and, once authenticated, the user id, and
naming the module that wrote them."""

from __future__ import annotations

import io
import json
import logging

import httpx

from app.core.logging import get_logger, working_on
from tests.conftest import TestUser, UserFactory, access_lines
from tests.helpers import create_product, place


async def test_access_line_is_json_with_request_and_user(
    client: httpx.AsyncClient, make_user: UserFactory, log_lines: io.StringIO
) -> None:
    user = await make_user()
    response = await client.get("/api/v1/users/me", headers={**user.headers, "X-Request-ID": "r-1"})
    assert response.status_code == 200

    [line] = [entry for entry in access_lines(log_lines) if entry["request_id"] == "r-1"]
    assert line["event"] == "request"
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/users/me"
    assert line["status"] == 200
    assert line["user_id"] == user.id
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_anonymous_request_logs_no_user(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    await client.get("/api/v1/catalog/products/not-a-uuid", headers={"X-Request-ID": "r-2"})
    [line] = [entry for entry in access_lines(log_lines) if entry["request_id"] == "r-2"]
    assert line["status"] == 422
    assert line["user_id"] is None


async def test_every_line_names_the_module_that_wrote_it(
    client: httpx.AsyncClient, staff: TestUser, customer: TestUser, log_lines: io.StringIO
) -> None:
    product = await create_product(client, staff)
    placed = await place(client, customer, (str(product["id"]), 1))
    assert placed.status_code == 201, placed.text
    await client.get("/api/v1/users/me", headers=customer.headers)
    await client.get("/healthz")
    logging.getLogger("sqlalchemy.pool").warning("a library's line, outside any work")
    with working_on("orders.take_payment"):
        logging.getLogger("httpx").warning("a library's line, in a job of orders")
        get_logger("keystone.jobs").info("a core line, in a job of orders")
    with working_on("catalog.reserve_stock"):
        get_logger("keystone.orders").info("orders' own line, wherever it runs")
    get_logger("keystone.relay").info("a line that names its module", module="users")

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.strip()]
    assert {line["module"] for line in lines} <= {"users", "catalog", "orders", "core"}
    by_event = {
        line["event"]: line["module"] for line in lines if line["logger"] != "keystone.access"
    }
    assert by_event["order placed"] == "orders"
    assert by_event["a library's line, outside any work"] == "core"
    assert by_event["a library's line, in a job of orders"] == "orders"
    assert by_event["a core line, in a job of orders"] == "orders"
    assert by_event["orders' own line, wherever it runs"] == "orders"
    assert by_event["a line that names its module"] == "users"
    routes = {(line["route"], line["method"]): line["module"] for line in access_lines(log_lines)}
    assert routes[("/api/v1/catalog/products", "POST")] == "catalog"
    assert routes[("/api/v1/orders", "POST")] == "orders"
    assert routes[("/api/v1/users/me", "GET")] == "users"
    assert routes[("/healthz", "GET")] == "core"
