"""Logs are JSON lines carrying the request id and, once authenticated, the user id."""

from __future__ import annotations

import io

import httpx

from tests.conftest import UserFactory, access_lines


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
