"""Bounded, strict input types shared by every module's request models.

Postgres rejects NUL in text and the other C0 control characters have no business in a name, so
they are a 422 here instead of a 500 from the driver.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")
_ISO_8601_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _no_control_characters(value: str) -> str:
    if _CONTROL_OR_NEWLINE.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_control_except_newlines(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
]
LongText = Annotated[
    str, StringConstraints(max_length=5_000), AfterValidator(_no_control_except_newlines)
]
PG_INT_MAX = 2**31 - 1


def _iso_8601_only(value: object) -> object:
    # Pydantic also reads "0.5" as a Unix time; the documented format is an ISO 8601 date-time.
    if isinstance(value, str) and not _ISO_8601_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]


class InputModel(BaseModel):
    """Base of every request body: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
