"""The OpenAPI document as the API answers: every error response is problem+json.

FastAPI documents a 422 as `application/json` with its own `HTTPValidationError`, and an error
response declared by a route (`responses={404: ...}`) without any body. The API answers every
error with the RFC 9457 body `app.core.errors.problem` builds; `document_problems` rewrites the
generated document so that generated clients and schema-driven tests (schemathesis, in
tests/test_api_fuzz.py) see what really comes back, including the 400 any request body can get
when it is not the JSON it claims to be, and the 429 of the rate limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from app.core.errors import PROBLEM_CONTENT_TYPE

_REF = "#/components/schemas/{model}"
# Set by `required_headers`; read and removed by `describe_problems`.
_REQUIRED_HEADERS = "x-keystone-required-headers"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_MALFORMED_BODY = "Malformed body: not valid JSON, or not the declared content type"
_RATE_LIMITED = "Too many requests: wait for Retry-After seconds (RateLimit-* headers)"
_INVALID_INPUT = "Invalid input (problem+json naming each field)"


class FieldProblem(BaseModel):
    field: str = Field(description="Where: `body.price`, `query.limit`, `path.product_id`")
    message: str
    type: str = Field(description="A stable code for the rule broken, e.g. `string_too_long`")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(description="A URI naming the kind of problem; stable, safe to switch on")
    title: str
    status: int
    detail: str = Field(description="What went wrong, for a human")
    instance: str = Field(description="The path of the request")
    request_id: str | None = Field(description="Quote it to support: it names the log lines")
    errors: list[FieldProblem] | None = Field(
        default=None, description="On a 422: each field that failed, and why"
    )


def links(source_field: str, **targets: tuple[str, str, str]) -> dict[str, Any]:
    """OpenAPI links from a response: for each name, (method, path, parameter) of an operation
    whose `parameter` takes this response's `source_field`. Clients and the stateful phase of
    schema-driven tests follow them from a created resource to what can be done with it."""
    return {
        name: {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
            "parameters": {parameter: f"$response.body#/{source_field}"},
        }
        for name, (method, path, parameter) in targets.items()
    }


def required_headers(*names: str) -> dict[str, Any]:
    """`openapi_extra` for a route whose dependency refuses a request without these headers
    with a problem of its own (a 400 naming the header, not FastAPI's generic 422): the
    document declares them required, as the route enforces them."""
    return {_REQUIRED_HEADERS: list(names)}


def _mark_required_headers(operation: dict[str, Any]) -> None:
    names = {name.lower() for name in operation.pop(_REQUIRED_HEADERS, [])}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "header" and parameter["name"].lower() in names:
            parameter["required"] = True
            schema = parameter["schema"]
            # `str | None` in the signature; never null on the wire.
            options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
            for option in options:
                schema.update(option)


def document_problems(app: FastAPI, *, rate_limited: bool) -> None:
    """Makes `app.openapi()` describe error responses as the API sends them."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        describe_problems(document, rate_limited=rate_limited)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def describe_problems(document: dict[str, Any], *, rate_limited: bool) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" in schemas:  # FastAPI hands back the document it made before: done already
        return
    problem = Problem.model_json_schema(ref_template=_REF)
    schemas.update(problem.pop("$defs"))
    schemas["Problem"] = problem
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    body = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}}
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            _mark_required_headers(operation)
            responses: dict[str, dict[str, Any]] = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault("400", {"description": _MALFORMED_BODY})
            if rate_limited and path.startswith("/api/"):
                responses.setdefault("429", {"description": _RATE_LIMITED})
            if responses.get("422", {}).get("description") == "Validation Error":
                responses["422"]["description"] = _INVALID_INPUT
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = body
