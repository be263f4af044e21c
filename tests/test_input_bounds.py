"""Every input is bounded and strict: an audit of every request body, form and parameter the API
declares, the hostile values that audit is about, and no SQL built from strings."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.security.rbac import Role
from tests.conftest import UserFactory
from tests.helpers import (
    CATEGORIES,
    ORDERS,
    PRODUCTS,
    assert_problem,
    error_fields,
    keyed,
    order_body,
    product_body,
)

ROOT = Path(__file__).resolve().parent.parent
_BOUNDED_PATTERN = re.compile(r"^\^[^*+]*\$$")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return name, document["components"]["schemas"][name]
    return None, schema


def _unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    name, schema = _resolve(document, schema)
    where = name or where
    found: list[str] = []
    if "enum" in schema or "const" in schema:
        return found  # a closed set of values is bounded
    # Constraints beside an anyOf apply to every option (FastAPI puts them there for `str | None`).
    inherited = {k: v for k, v in schema.items() if k in ("maxLength", "pattern", "maximum")}
    for option in schema.get("anyOf", []):
        found += _unbounded(document, {**inherited, **option}, where)
    kind = schema.get("type")
    if kind == "object":
        for prop, sub in schema.get("properties", {}).items():
            found += _unbounded(document, sub, f"{where}.{prop}")
    elif kind == "array":
        if "maxItems" not in schema:
            found.append(f"{where}: list without maxItems")
        found += _unbounded(document, schema.get("items", {}), f"{where}[]")
    elif kind == "string":
        bounded_pattern = bool(_BOUNDED_PATTERN.match(schema.get("pattern", "")))
        # uuid and date-time are parsed into fixed-size values, never stored as sent
        fixed_format = schema.get("format") in ("uuid", "date-time", "date")
        if not ("maxLength" in schema or bounded_pattern or fixed_format):
            found.append(f"{where}: string without maxLength")
    elif kind in ("integer", "number") and "maximum" not in schema:
        found.append(f"{where}: {kind} without maximum")
    return found


async def test_every_input_is_bounded(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    checked, unbounded = 0, []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            for content in operation.get("requestBody", {}).get("content", {}).values():
                checked += 1
                unbounded += _unbounded(document, content["schema"], where)
            for parameter in operation.get("parameters", []):
                checked += 1
                name = f"{where} {parameter['name']}"
                unbounded += _unbounded(document, parameter["schema"], name)
    assert checked >= 9  # register, login form, product, category, order, query and path
    assert unbounded == []
    # ...and the audit does see an unbounded field.
    probe = {"type": "object", "properties": {"s": {"type": "string"}, "n": {"type": "integer"}}}
    assert _unbounded(document, probe, "Probe") == [
        "Probe.s: string without maxLength",
        "Probe.n: integer without maximum",
    ]


def test_json_bodies_refuse_unknown_fields() -> None:
    from app.core.validation import InputModel
    from app.modules.catalog import schemas as catalog  # noqa: F401 - registers the models
    from app.modules.orders import schemas as orders  # noqa: F401
    from app.modules.users import schemas as users  # noqa: F401

    models = InputModel.__subclasses__()
    assert len(models) >= 5
    assert all(model.model_config.get("extra") == "forbid" for model in models)


@pytest.fixture
async def staff(make_user: UserFactory) -> dict[str, str]:
    return (await make_user(Role.STAFF)).headers


@pytest.mark.parametrize("name", ["Desks\x1b[31m", "two\nlines", "tab\there", "nul\x00", "del\x7f"])
async def test_control_characters_in_names_are_refused(
    client: httpx.AsyncClient, staff: dict[str, str], name: str
) -> None:
    response = await client.post(CATEGORIES, json={"name": name}, headers=staff)
    assert error_fields(assert_problem(response, 422)) == {"body.name"}


@pytest.mark.parametrize(
    ("field", "value"),
    # 1.0 is an integer to JSON schema, and so to the API (tests/test_openapi_fidelity.py).
    [("stock", "10"), ("stock", "1e3"), ("stock", 1.5), ("stock", True), ("price", "1" * 200)],
)
async def test_numbers_are_not_silently_coerced(
    client: httpx.AsyncClient, staff: dict[str, str], field: str, value: object
) -> None:
    response = await client.post(PRODUCTS, json=product_body(**{field: value}), headers=staff)
    assert error_fields(assert_problem(response, 422)) == {f"body.{field}"}


@pytest.mark.parametrize("quantity", ["2", "1e3", 2.5, True])
async def test_order_quantity_must_be_a_real_integer(
    client: httpx.AsyncClient, make_user: UserFactory, quantity: object
) -> None:
    customer = await make_user()
    body = order_body(("00000000-0000-0000-0000-000000000001", 1))
    body["items"][0]["quantity"] = quantity
    response = await client.post(ORDERS, json=body, headers=keyed(customer))
    assert error_fields(assert_problem(response, 422)) == {"body.items.0.quantity"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "a" * 321 + "@example.com", "password": "x"}, "body.username"),
        ({"username": "a@example.com", "password": "x" * 129}, "body.password"),
    ],
)
async def test_login_form_fields_are_bounded(
    client: httpx.AsyncClient, data: dict[str, str], field: str
) -> None:
    response = await client.post("/api/v1/auth/login", data=data)
    assert field in error_fields(assert_problem(response, 422))


# SQL written as text with values formatted in: each site here interpolates only identifiers of
# our own code (schema and table names), never a request value.
IDENTIFIER_ONLY_SQL = {
    ("app/bootstrap.py", "truncate_all"),
    ("app/core/migrations.py", "current_revision"),
    ("devtools/servers.py", "create_database"),
    # Role DDL takes no bound parameters: schema names of ours, role names checked against a
    # pattern, and a login's password from its settings, quoted as a literal.
    ("app/core/db_roles.py", "_create_role"),
    ("app/core/db_roles.py", "_objects_owned_by_others"),
    ("app/core/db_roles.py", "become_owner"),
    ("app/core/db_roles.py", "_grant_login"),
}
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


def _formatted_sql(tree: ast.AST) -> set[str]:
    """Names of the functions holding an f-string, %-format or .format() that looks like SQL."""
    found: set[str] = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            literal = ""
            if isinstance(node, ast.JoinedStr):
                literal = "".join(
                    part.value for part in node.values if isinstance(part, ast.Constant)
                )
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
                literal = node.left.value if isinstance(node.left, ast.Constant) else ""
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and isinstance(node.func.value, ast.Constant)
            ):
                literal = node.func.value.value
            if isinstance(literal, str) and _SQL.search(literal):
                found.add(function.name)
    return found


def test_sql_takes_values_only_as_bound_parameters() -> None:
    sites = {
        (str(path.relative_to(ROOT)), function)
        for package in ("app", "devtools")
        for path in (ROOT / package).rglob("*.py")
        for function in _formatted_sql(ast.parse(path.read_text()))
    }
    assert sites == IDENTIFIER_ONLY_SQL


def test_the_sql_audit_sees_a_formatted_query() -> None:
    hostile = (
        "async def find(session, email):\n"
        "    await session.execute(text(f\"SELECT * FROM u WHERE e = '{email}'\"))\n"
    )
    assert _formatted_sql(ast.parse(hostile)) == {"find"}


@pytest.mark.parametrize("name", ["min_price", "max_price"])
async def test_price_filters_refuse_huge_numbers(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(PRODUCTS, params={name: "9" * 200})
    assert error_fields(assert_problem(response, 422)) == {f"query.{name}"}
