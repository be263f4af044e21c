"""Keyset pagination: `{"items": [...], "next_cursor": ...}` with an opaque cursor.

A listing decodes the cursor it was sent into the position to read after (`decode_cursor`, or
`decode_newest_first_cursor` for a newest-first listing keyed on a time and an id), then
`keyset_page` reads one row more than the page holds and writes the next page's cursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

from app.core.errors import DomainError

T = TypeVar("T")
Row = TypeVar("Row")
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


def cursor_instant(text: object) -> datetime:
    """A timestamp read from a cursor, in UTC. Issued cursors always carry an offset; normalising
    to UTC also refuses instants Postgres cannot bind (year 9999 at -14:00 overflows)."""
    if not isinstance(text, str):
        raise InvalidCursorError
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise InvalidCursorError
    return moment.astimezone(UTC)


def decode_newest_first_cursor(cursor: str, time_key: str) -> tuple[datetime, UUID]:
    """The position a newest-first listing keyed on (`time_key`, "id") reads after."""
    position = decode_cursor(cursor, frozenset({time_key, "id"}))
    try:
        return cursor_instant(position[time_key]), UUID(position["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCursorError from exc


def newest_first_position(time_key: str, moment: datetime, row_id: UUID) -> dict[str, Any]:
    """What `decode_newest_first_cursor` reads back."""
    return {time_key: moment.isoformat(), "id": str(row_id)}


@dataclass(frozen=True)
class KeysetPage(Generic[Row]):
    items: list[Row]
    next_cursor: str | None


async def keyset_page(
    limit: int,
    fetch: Callable[[int], Awaitable[Sequence[Row]]],
    position_of: Callable[[Row], dict[str, Any]],
) -> KeysetPage[Row]:
    """Up to `limit` rows from `fetch(size)`, which is asked for one more: a row beyond the page
    means another page follows, and its cursor is the position of this page's last row."""
    rows = await fetch(limit + 1)
    items = list(rows[:limit])
    next_cursor = encode_cursor(position_of(items[-1])) if len(rows) > limit else None
    return KeysetPage(items=items, next_cursor=next_cursor)
