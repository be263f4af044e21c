"""Logs are JSON lines carrying the request id and, once authenticated, the user id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from app.core.config import Settings
from app.core.logging import configure_logging
from tests.conftest import UserFactory, make_settings


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    configure_logging(
        make_settings(
            settings.require_database_url(),
            settings.require_redis_url(),
            log_level="INFO",
            log_json=True,
        )
    )
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
    configure_logging(settings)


def access_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("logger") == "keystone.access"]


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
