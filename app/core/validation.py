"""Bounded, strict input types shared by every module's request models.

Postgres rejects NUL in text and the other C0 control characters have no business in a name, so
they are a 422 here instead of a 500 from the driver. Each type documents in its JSON schema the
very rule it enforces (a pattern, a bound), so that the OpenAPI document is what the API accepts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# The characters str.strip() removes that are not control characters (those are refused).
_SPACES = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f"
_TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # tab, newline and carriage return allowed
NAME_PATTERN = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACES}][^{_CONTROL}]*$"
LONG_TEXT_PATTERN = rf"^[^{_TEXT_CONTROL}]*$"
_HAS_CONTROL = re.compile(rf"[{_CONTROL}]")
_HAS_TEXT_CONTROL = re.compile(rf"[{_TEXT_CONTROL}]")
_ISO_8601_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _name(value: str) -> str:
    if _HAS_CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _no_control_except_newlines(value: str) -> str:
    if _HAS_TEXT_CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


# Up to 200 characters as sent, at least one of them visible; kept without outer spaces.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
    AfterValidator(_name),
]
LongText = Annotated[
    str,
    StringConstraints(max_length=5_000),
    Field(json_schema_extra={"pattern": LONG_TEXT_PATTERN}),
    AfterValidator(_no_control_except_newlines),
]
PG_INT_MAX = 2**31 - 1


def _json_integer(value: object) -> object:
    # JSON schema's integer is any number without a fraction (5.0 too), never a string or a
    # boolean; pydantic's lax int would take "5" and true, its strict int would refuse 5.0.
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


# Put last, after `Field(ge=..., le=...)`, so that the bounds stay in the schema.
JSON_INTEGER = BeforeValidator(_json_integer)


def _iso_8601_only(value: object) -> object:
    # Pydantic also reads "0.5" as a Unix time; the documented format is an ISO 8601 date-time.
    if isinstance(value, str) and not _ISO_8601_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]


class InputModel(BaseModel):
    """Base of every request body: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _without_null(schema: dict[str, Any]) -> None:
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if schema.get("default", "") is None:
        del schema["default"]  # absent means unchanged, not null
    if len(options) == 1:
        schema.update(options[0])
    else:
        schema["anyOf"] = options


# For a PATCH field that may be left out but not sent as null (its validator refuses null):
# `name: Annotated[Name | None, NEVER_NULL] = None`, documented without the null.
NEVER_NULL = Field(json_schema_extra=_without_null)


def _at_least_one_property(schema: dict[str, Any]) -> None:
    # Says "at least one of these fields" in a way schema-driven tools generate from, where
    # `minProperties` would also admit a made-up field that `extra="forbid"` refuses.
    schema["anyOf"] = [{"required": [name]} for name in schema.get("properties", {})]


class ChangeRequest(InputModel):
    """Base of PATCH bodies: only the fields sent change, and at least one must be sent."""

    model_config = ConfigDict(json_schema_extra=_at_least_one_property)

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self
