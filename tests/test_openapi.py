"""The API documents itself: every operation is described, errors are declared, and no
response schema can carry a secret."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.openapi import Problem
from app.main import create_app
from tests.conftest import Servers, make_settings

SECRET_FIELDS = {
    "password",
    "password_hash",
    "hashed_password",
    "token_hash",
    "secret",
    "is_active",
}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_operation_has_a_summary_and_a_tag(openapi: dict[str, Any]) -> None:
    undocumented = [
        f"{method} {path}"
        for method, path, op in operations(openapi)
        if not op.get("summary") or not op.get("tags")
    ]
    assert undocumented == []


async def test_protected_operations_declare_401(app: FastAPI, openapi: dict[str, Any]) -> None:
    protected = [
        (method, path, op)
        for method, path, op in operations(openapi)
        if op.get("security") and path.startswith("/api/")
    ]
    assert len(protected) >= 4  # users/me, products and categories writes, orders
    assert [f"{m} {p}" for m, p, op in protected if "401" not in op["responses"]] == []


async def test_swagger_can_log_in_with_the_password_flow(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    flows = [scheme["flows"]["password"] for scheme in schemes.values() if "flows" in scheme]
    assert flows == [{"scopes": {}, "tokenUrl": "/api/v1/auth/login"}]


def _property_names(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema.get("properties", {}))
        for value in schema.values():
            found |= _property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _property_names(value)
    return found


async def test_no_response_schema_carries_a_secret(openapi: dict[str, Any]) -> None:
    components = openapi["components"]["schemas"]
    response_schemas = {
        ref.rsplit("/", 1)[-1]
        for _, _, op in operations(openapi)
        for response in op["responses"].values()
        for media in response.get("content", {}).values()
        for ref in _refs(media.get("schema", {}))
    }
    assert response_schemas  # the walk found the schemas it checks
    leaked = {
        name: sorted(_property_names(components[name]) & SECRET_FIELDS)
        for name in response_schemas
        if _property_names(components[name]) & SECRET_FIELDS
    }
    assert leaked == {}


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        own = {schema["$ref"]} if "$ref" in schema else set()
        return own.union(*(_refs(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_refs(value) for value in schema))
    return set()


async def _preflight(servers: Servers, database_url: str, origin: str) -> httpx.Response:
    settings = make_settings(database_url, servers.redis_url, cors_origins=["https://shop.example"])
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.options(
                "/api/v1/catalog/products",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            )


async def test_cors_allows_only_listed_origins(servers: Servers, database_url: str) -> None:
    allowed = await _preflight(servers, database_url, "https://shop.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    refused = await _preflight(servers, database_url, "https://evil.example")
    assert "access-control-allow-origin" not in refused.headers


async def test_every_error_response_is_documented_as_problem_json(
    openapi: dict[str, Any],
) -> None:
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    undocumented = [
        f"{method} {path} {status}"
        for method, path, op in operations(openapi)
        for status, response in op["responses"].items()
        if status[0] in "45"
        and response.get("content") != {"application/problem+json": {"schema": problem_ref}}
    ]
    assert undocumented == []
    # FastAPI's own validation-error schemas describe a body the API never sends.
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


async def test_operations_declare_the_errors_any_request_can_get(openapi: dict[str, Any]) -> None:
    api = [(m, p, op) for m, p, op in operations(openapi) if p.startswith("/api/")]
    with_body = [(m, p, op) for m, p, op in api if "requestBody" in op]
    assert len(with_body) >= 10
    assert [f"{m} {p}" for m, p, op in with_body if "400" not in op["responses"]] == []
    assert [f"{m} {p}" for m, p, op in api if "429" not in op["responses"]] == []


async def test_a_real_problem_matches_the_documented_schema(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={"email": "nope"})
    assert response.status_code == 422
    problem = Problem.model_validate_json(response.content)
    assert problem.errors is not None
    assert {error.field for error in problem.errors} >= {"body.email", "body.password"}
    malformed = await client.post(  # not even text: FastAPI answers 400, not 422
        "/api/v1/auth/register", content=b"\xc3\x28", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert Problem.model_validate_json(malformed.content).status == 400
