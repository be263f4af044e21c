"""The committed contract snapshots (docs/contracts/) are the code's contracts, and a change
that breaks their readers or writers fails unless its version is bumped. The checker is shown to
catch each kind of break on real contracts and on small schemas."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ConfigDict

from app.contracts import (
    SNAPSHOTS,
    Contract,
    check_snapshots,
    events,
    internal_api,
    live_contracts,
    write_snapshots,
)
from app.core.compatibility.openapi import openapi_changes
from app.core.compatibility.schemas import Direction, schema_changes


def test_the_snapshots_are_the_contracts_of_the_code() -> None:
    assert check_snapshots() == []


def test_every_module_and_event_has_a_snapshot() -> None:
    paths = {contract.path for contract in live_contracts()}
    assert SNAPSHOTS / "catalog" / "internal-api.json" in paths
    assert SNAPSHOTS / "orders" / "events" / "orders.OrderPlaced.v1.json" in paths
    assert len(paths) == len(list(SNAPSHOTS.rglob("*.json")))


def edited(contract: Contract, change: Any) -> Contract:
    """The contract as the code would be after `change` (a function of its document)."""
    document = copy.deepcopy(contract.document)
    change(document)
    return replace(contract, document=document)


def stock_reserved() -> Contract:
    (contract,) = [c for c in events("catalog") if c.name == "event catalog.StockReserved v1"]
    return contract


def test_removing_an_event_field_fails_until_the_version_is_bumped() -> None:
    changed = edited(stock_reserved(), lambda d: d["properties"].pop("order_id"))

    (problem,) = check_snapshots([changed])[:1]
    assert "incompatible change without a version bump" in problem
    assert ".order_id: field removed" in problem
    assert "declare catalog.StockReserved with event_version 2" in problem


def test_narrowing_an_internal_response_field_fails_until_the_version_is_bumped() -> None:
    def no_more_null(document: dict[str, Any]) -> None:
        contact = document["paths"]["/internal/users/contacts/{user_id}"]["get"]
        schema = contact["responses"]["200"]["content"]["application/json"]["schema"]
        schema.pop("anyOf")
        schema["$ref"] = "#/components/schemas/Contact"  # `Contact`, no longer `Contact | None`

    api = internal_api("users")
    changed = edited(api, no_more_null)
    (problem,) = check_snapshots([changed])[:1]
    # For a reader of the answer a narrower type is no break; the unchanged null reaches no one.
    assert "changed; refresh its snapshot" in problem

    def required_name(document: dict[str, Any]) -> None:
        schema = document["components"]["schemas"]["AuditEntryIn"]
        schema["required"] = [*schema["required"], "target"]

    (problem,) = check_snapshots([edited(api, required_name)])[:1]
    assert "PUT /internal/users/audit-entries/{entry_id} body.target: field now required" in problem

    bumped = edited(api, required_name)
    bumped = replace(bumped, version=2)
    (problem,) = check_snapshots([bumped])[:1]
    assert "changed; refresh its snapshot" in problem  # bumped: allowed, once written


def test_an_unchanged_contract_passes_and_a_compatible_change_asks_for_a_refresh() -> None:
    contract = stock_reserved()
    assert check_snapshots([contract]) == []
    described = edited(contract, lambda d: d.update(description="reserved for an order"))
    assert check_snapshots([described]) == [
        "event catalog.StockReserved v1: changed; refresh its snapshot with "
        "`python -m app.cli contracts --write`"
    ]


def test_the_writer_refreshes_compatible_changes_and_refuses_breaks(tmp_path: Path) -> None:
    shutil.copytree(SNAPSHOTS, tmp_path, dirs_exist_ok=True)
    stock = tmp_path / "catalog" / "events" / "catalog.StockReserved.v1.json"
    contact = tmp_path / "users" / "internal-api.json"
    # As if the code had lost a field (the snapshot still has it) ...
    lost = json.loads(stock.read_text())
    lost["properties"]["reason"] = {"type": "string"}
    stock.write_text(json.dumps(lost))
    # ... and had only reworded a summary.
    reworded = json.loads(contact.read_text())
    reworded["info"]["description"] = "an older wording"
    contact.write_text(json.dumps(reworded))
    (tmp_path / "orders" / "events" / "orders.OrderLost.v1.json").write_text("{}")

    problems = write_snapshots(tmp_path)

    assert len(problems) == 2, problems
    assert ".reason: field removed" in problems[0]
    assert "orders.OrderLost.v1.json: snapshot of a contract the code no longer" in problems[1]
    assert json.loads(stock.read_text()) == lost  # refused: left as it was
    assert json.loads(contact.read_text()) == internal_api("users").document  # refreshed
    assert check_snapshots(root=tmp_path) == problems


# --- the checker on small schemas ----------------------------------------------------------


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: UUID
    quantity: int
    note: str | None = None


class Placed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: UUID
    items: list[Item]
    total: Decimal
    status: str


def schema(**edits: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(Placed.model_json_schema()))
    for path, value in edits.items():
        *parents, last = path.split("__")
        target = document
        for part in parents:
            target = target[part]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return document


def breaks(old: dict[str, Any], new: dict[str, Any], direction: Direction) -> list[str]:
    return [str(change) for change in schema_changes(old, new, direction)]


@pytest.mark.parametrize("direction", [Direction.INPUT, Direction.OUTPUT, Direction.BOTH])
def test_the_same_schema_breaks_nothing(direction: Direction) -> None:
    assert breaks(schema(), schema(), direction) == []


def test_a_removed_field_breaks_every_direction() -> None:
    new = schema(properties__status=None, required=["order_id", "items", "total"])
    for direction in Direction:
        assert ".status: field removed" in breaks(schema(), new, direction)


def test_a_narrowed_type_breaks_writers_not_readers() -> None:
    note = "$defs__Item__properties__note"
    new = schema(**{note: {"type": "string", "maxLength": 20}})
    assert breaks(schema(), new, Direction.INPUT) == [
        ".items[].note: narrowed type: null no longer accepted",
        ".items[].note: maxLength tightened from None to 20",
    ]
    assert breaks(schema(), new, Direction.OUTPUT) == []
    assert len(breaks(schema(), new, Direction.BOTH)) == 2


def test_a_widened_type_breaks_readers_not_writers() -> None:
    new = schema(properties__status={"anyOf": [{"type": "string"}, {"type": "null"}]})
    assert breaks(schema(), new, Direction.OUTPUT) == [".status: widened type: may now be null"]
    assert breaks(schema(), new, Direction.INPUT) == []


def test_integer_to_number_widens_and_number_to_integer_narrows() -> None:
    quantity = "$defs__Item__properties__quantity"
    wider = schema(**{quantity: {"type": "number"}})
    assert breaks(schema(), wider, Direction.OUTPUT) == [
        ".items[].quantity: widened type: may now be number"
    ]
    assert breaks(wider, schema(), Direction.INPUT) == [
        ".items[].quantity: narrowed type: number no longer accepted"
    ]


def test_new_fields_break_closed_readers_and_required_ones_writers() -> None:
    extra = {"type": "string"}
    optional = schema(properties={**schema()["properties"], "coupon": extra})
    assert breaks(schema(), optional, Direction.OUTPUT) == [
        ".coupon: new field, which old readers refuse as unknown"
    ]
    assert breaks(schema(), optional, Direction.INPUT) == []
    required = schema(
        properties={**schema()["properties"], "coupon": extra},
        required=[*schema()["required"], "coupon"],
    )
    assert ".coupon: new required field" in breaks(schema(), required, Direction.INPUT)


def test_enum_values_added_break_readers_and_removed_ones_writers() -> None:
    old = schema(properties__status={"enum": ["pending", "paid"], "type": "string"})
    more = schema(properties__status={"enum": ["pending", "paid", "lost"], "type": "string"})
    assert breaks(old, more, Direction.OUTPUT) == [
        ".status: new values readers do not expect: 'lost'"
    ]
    assert breaks(more, old, Direction.INPUT) == [".status: values no longer accepted: 'lost'"]
    assert breaks(schema(), old, Direction.INPUT) == [
        ".status: now restricted to 'paid', 'pending'"
    ]


def test_optional_and_required_fields_swap_roles_by_direction() -> None:
    optional_total = schema(required=["order_id", "items", "status"])
    assert breaks(schema(), optional_total, Direction.OUTPUT) == [
        ".total: field no longer always present"
    ]
    assert breaks(optional_total, schema(), Direction.INPUT) == [".total: field now required"]


def api(parameters: list[dict[str, Any]], response: dict[str, Any]) -> dict[str, Any]:
    ok = {"content": {"application/json": {"schema": response}}, "description": "OK"}
    operation = {"parameters": parameters, "responses": {"200": ok}}
    return {"paths": {"/internal/things": {"get": operation}}, "components": {"schemas": {}}}


def test_openapi_operations_parameters_and_responses() -> None:
    ids = {"in": "query", "name": "id", "required": True, "schema": {"type": "string"}}
    flag = {"in": "query", "name": "all", "required": False, "schema": {"type": "boolean"}}
    answer = {"type": "array", "items": {"type": "string"}}
    old = api([ids, flag], answer)

    assert openapi_changes(old, old) == []
    assert [str(c) for c in openapi_changes(old, {"paths": {}})] == [
        "GET /internal/things: operation removed"
    ]
    required_flag = api([ids, {**flag, "required": True}], answer)
    assert [str(c) for c in openapi_changes(old, required_flag)] == [
        "GET /internal/things query all: parameter now required"
    ]
    numbers = api([ids, flag], {"type": "array", "items": {"type": "number"}})
    assert [str(c) for c in openapi_changes(old, numbers)] == [
        "GET /internal/things 200[]: widened type: may now be integer, number",
    ]
    assert "parameter removed" in str(openapi_changes(old, api([ids], answer))[0])
