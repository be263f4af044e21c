"""Keyset pagination: `{"items": [...], "next_cursor": ...}` with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.core.errors import DomainError

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"


def cursor_query(max_length: int) -> Any:
    """The `cursor` query parameter: what a page's `next_cursor` said, sent back unchanged.
    A malformed one is a 422 naming `query.cursor`; a well-formed one this API did not issue
    (or issued for another sort) is a 400 `invalid-cursor` problem."""
    return Query(
        min_length=1,
        max_length=max_length,
        pattern=CURSOR_PATTERN,
        description="Opaque: the `next_cursor` of the previous page, unchanged (base64url, "
        "no padding). Omit it for the first page.",
    )


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class InvalidCursorError(DomainError):
    status = 400
    code = "invalid-cursor"

    def __init__(self) -> None:
        super().__init__("The cursor is not one this API issued; start again without it")


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: frozenset[str]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError from exc
    if not isinstance(position, dict) or set(position) != keys:
        raise InvalidCursorError
    return position
