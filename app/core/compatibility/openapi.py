"""Compares two OpenAPI documents: what breaks, for a caller of the old API, in the new one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from app.core.compatibility.schemas import Direction, Incompatibility, Schema, SchemaComparison


def openapi_changes(old: Schema, new: Schema) -> list[Incompatibility]:
    """What breaks, for a caller of the old API, in the new one: operations, parameters,
    request bodies (INPUT) and success responses (OUTPUT)."""
    found: list[Incompatibility] = []
    new_paths: Mapping[str, Schema] = new.get("paths", {})
    for path, item in old.get("paths", {}).items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            replacement = new_paths.get(path, {}).get(method)
            if replacement is None:
                found.append(Incompatibility(where, "operation removed"))
                continue
            found += _operation_changes(old, new, operation, replacement, where)
    return found


def _operation_changes(
    old_doc: Schema, new_doc: Schema, old: Schema, new: Schema, where: str
) -> Iterator[Incompatibility]:
    old_params = {(p["in"], p["name"]): p for p in old.get("parameters", ())}
    new_params = {(p["in"], p["name"]): p for p in new.get("parameters", ())}
    for key in sorted(old_params.keys() - new_params.keys()):
        yield Incompatibility(f"{where} {key[0]} {key[1]}", "parameter removed")
    for key, param in sorted(new_params.items()):
        before = old_params.get(key)
        label = f"{where} {key[0]} {key[1]}"
        if param.get("required") and not (before or {}).get("required"):
            yield Incompatibility(label, "parameter now required")
        if before is not None:
            yield from _within(
                old_doc, new_doc, before["schema"], param["schema"], label, Direction.INPUT
            )
    old_body, new_body = _body_schema(old.get("requestBody")), _body_schema(new.get("requestBody"))
    if old_body is not None and new_body is None:
        yield Incompatibility(f"{where} body", "request body no longer read")
    if new.get("requestBody", {}).get("required") and not old.get("requestBody", {}).get(
        "required"
    ):
        yield Incompatibility(f"{where} body", "request body now required")
    if old_body is not None and new_body is not None:
        yield from _within(old_doc, new_doc, old_body, new_body, f"{where} body", Direction.INPUT)
    old_ok = {code: r for code, r in old.get("responses", {}).items() if code.startswith("2")}
    new_ok = {code: r for code, r in new.get("responses", {}).items() if code.startswith("2")}
    for code in sorted(old_ok.keys() ^ new_ok.keys()):
        change = "no longer answered" if code in old_ok else "answered now, unknown to callers"
        yield Incompatibility(f"{where} {code}", change)
    for code in sorted(old_ok.keys() & new_ok.keys()):
        before, after = _body_schema(old_ok[code]), _body_schema(new_ok[code])
        if before is not None and after is not None:
            yield from _within(old_doc, new_doc, before, after, f"{where} {code}", Direction.OUTPUT)
        elif before is not None:
            yield Incompatibility(f"{where} {code}", "no longer has a body")


def _within(
    old_doc: Schema, new_doc: Schema, old: Schema, new: Schema, where: str, direction: Direction
) -> list[Incompatibility]:
    comparison = SchemaComparison(old_doc, new_doc, direction)
    comparison.compare(old, new, where)
    return comparison.found


def _body_schema(part: Schema | None) -> Schema | None:
    if not part:
        return None
    content: Mapping[str, Schema] = part.get("content", {})
    media = content.get("application/json")
    return None if media is None else media.get("schema", {})
