"""Compares two JSON Schemas: what a change breaks for readers (OUTPUT), writers (INPUT) or
both, each `$ref` resolved against its own document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Flag
from typing import Any

Schema = Mapping[str, Any]
ANY_KIND = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_PYTHON_KINDS = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
# (keyword, True when a larger value accepts more)
_BOUNDS = (
    ("maxLength", True),
    ("minLength", False),
    ("maximum", True),
    ("minimum", False),
    ("exclusiveMaximum", True),
    ("exclusiveMinimum", False),
    ("maxItems", True),
    ("minItems", False),
)


class Direction(Flag):
    INPUT = 1
    OUTPUT = 2
    BOTH = 3


@dataclass(frozen=True)
class Incompatibility:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where or '(root)'}: {self.what}"


class SchemaComparison:
    def __init__(self, old_root: Schema, new_root: Schema, direction: Direction) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.direction = direction
        self.found: list[Incompatibility] = []
        self._seen: set[tuple[int, int]] = set()

    @property
    def reads(self) -> bool:
        return Direction.OUTPUT in self.direction

    @property
    def writes(self) -> bool:
        return Direction.INPUT in self.direction

    def flag(self, where: str, what: str) -> None:
        self.found.append(Incompatibility(where, what))

    def compare(self, old: Schema, new: Schema, where: str) -> None:
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        if (id(old), id(new)) in self._seen:  # a recursive schema: compared already
            return
        self._seen.add((id(old), id(new)))
        old_kinds, new_kinds = _kinds(old, self.old_root), _kinds(new, self.new_root)
        if self.writes and old_kinds - new_kinds:
            self.flag(where, f"narrowed type: {_names(old_kinds - new_kinds)} no longer accepted")
        if self.reads and new_kinds - old_kinds:
            self.flag(where, f"widened type: may now be {_names(new_kinds - old_kinds)}")
        for kind in sorted(old_kinds & new_kinds):
            old_branch = _branch(old, kind, self.old_root)
            new_branch = _branch(new, kind, self.new_root)
            if kind == "object":
                self._objects(old_branch, new_branch, where)
            elif kind == "array":
                self._arrays(old_branch, new_branch, where)
            else:
                self._values(old_branch, new_branch, kind, where)

    def _objects(self, old: Schema, new: Schema, where: str) -> None:
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name in sorted(old_props.keys() - new_props.keys()):
            self.flag(f"{where}.{name}", "field removed")
        for name in sorted(new_props.keys() - old_props.keys()):
            if self.writes and name in new_required:
                self.flag(f"{where}.{name}", "new required field")
            if self.reads and _closed(old):
                self.flag(f"{where}.{name}", "new field, which old readers refuse as unknown")
        for name in sorted(old_props.keys() & new_props.keys()):
            if self.writes and name in new_required - old_required:
                self.flag(f"{where}.{name}", "field now required")
            if self.reads and name in old_required - new_required:
                self.flag(f"{where}.{name}", "field no longer always present")
            self.compare(old_props[name], new_props[name], f"{where}.{name}")
        if self.writes and _closed(new) and not _closed(old):
            self.flag(where, "unknown fields now refused")
        if self.reads and _closed(old) and not _closed(new):
            self.flag(where, "may now carry fields old readers refuse as unknown")
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            self.compare(old_extra, new_extra, f"{where}.*")

    def _arrays(self, old: Schema, new: Schema, where: str) -> None:
        self._bounds(old, new, where)
        old_items, new_items = old.get("items"), new.get("items")
        if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
            self.compare(old_items, new_items, f"{where}[]")

    def _values(self, old: Schema, new: Schema, kind: str, where: str) -> None:
        self._bounds(old, new, where)
        old_values, new_values = _enum(old, kind), _enum(new, kind)
        if self.writes and new_values is not None:
            if old_values is None:
                self.flag(where, f"now restricted to {_names(new_values)}")
            elif old_values - new_values:
                self.flag(where, f"values no longer accepted: {_names(old_values - new_values)}")
        if self.reads and old_values is not None:
            if new_values is None:
                self.flag(where, f"no longer restricted to {_names(old_values)}")
            elif new_values - old_values:
                self.flag(
                    where, f"new values readers do not expect: {_names(new_values - old_values)}"
                )
        for keyword in ("format", "pattern"):
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            if self.writes and after is not None:
                self.flag(where, f"{keyword} now {after!r} (was {before!r})")
            if self.reads and before is not None:
                self.flag(where, f"{keyword} {before!r} no longer holds (now {after!r})")

    def _bounds(self, old: Schema, new: Schema, where: str) -> None:
        for keyword, larger_accepts_more in _BOUNDS:
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            looser = after is None or (
                before is not None and (after > before) == larger_accepts_more
            )
            if self.writes and not looser:
                self.flag(where, f"{keyword} tightened from {before} to {after}")
            if self.reads and looser:
                self.flag(where, f"{keyword} loosened from {before} to {after}")


def schema_changes(old: Schema, new: Schema, direction: Direction) -> list[Incompatibility]:
    """What breaks between two JSON Schemas (each resolving its own `$ref`s)."""
    comparison = SchemaComparison(old, new, direction)
    comparison.compare(old, new, "")
    return comparison.found


def _resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    if "allOf" in schema and len(schema["allOf"]) == 1:  # a lone allOf wraps a $ref
        return _resolve(schema["allOf"][0], root)
    return schema


def _kinds(schema: Schema, root: Schema) -> frozenset[str]:
    schema = _resolve(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return frozenset().union(*(_kinds(branch, root) for branch in branches))
    declared = schema.get("type")
    if isinstance(declared, str):
        kinds = {declared}
    elif isinstance(declared, list):
        kinds = set(declared)
    elif "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        kinds = {_PYTHON_KINDS.get(type(value), "object") for value in values}
    else:
        return ANY_KIND
    if "number" in kinds:
        kinds.add("integer")
    return frozenset(kinds)


def _branch(schema: Schema, kind: str, root: Schema) -> Schema:
    """The part of `schema` that says what a value of `kind` may be."""
    schema = _resolve(schema, root)
    for branch in schema.get("anyOf") or schema.get("oneOf") or ():
        if kind in _kinds(branch, root):
            return _branch(branch, kind, root)
    return schema


def _enum(schema: Schema, kind: str) -> set[str] | None:
    if "const" in schema:
        return {repr(schema["const"])}
    if "enum" in schema:
        return {repr(v) for v in schema["enum"] if _PYTHON_KINDS.get(type(v), "object") == kind}
    return None


def _closed(schema: Schema) -> bool:
    return schema.get("additionalProperties") is False


def _names(values: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(values))
