"""`GET /products` as asked, and the cursor that carries a listing's position from page to
page."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from app.core.pagination import InvalidCursorError, cursor_instant, decode_cursor
from app.modules.catalog.exceptions import CursorSortMismatchError
from app.modules.catalog.repository import SORT_KEYS, Listing
from app.modules.catalog.schemas import ProductSort

_CURSOR_KEYS = frozenset({"sort", "key", "id"})
_PRICE_KEY = re.compile(r"^\d{1,10}\.\d{2}$")
_NAME_KEY_MAX = 200


@dataclass(frozen=True)
class ListingRequest:
    """`GET /products` as asked: filters, sort, page size and the cursor, if any."""

    limit: int
    cursor: str | None = None
    sort: ProductSort = ProductSort.NEWEST
    category_id: UUID | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    q: str | None = None

    def cache_key(self) -> str:
        fields = {k: None if v is None else str(v) for k, v in self.__dict__.items()}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        return f"catalog:list:{digest[:32]}"


def cursor_position(sort: ProductSort, row: Any) -> dict[str, Any]:
    """What the cursor of the page after `row` holds: the sort, the row's sort key, its id."""
    value = getattr(row, SORT_KEYS[sort][0].key)
    key = value.isoformat() if isinstance(value, datetime) else str(value)
    return {"sort": sort.value, "key": key, "id": str(row.id)}


def _parse_cursor_key(sort: ProductSort, text: object) -> Any:
    if not isinstance(text, str):
        raise InvalidCursorError
    if sort is ProductSort.NEWEST:
        return cursor_instant(text)
    if sort in (ProductSort.PRICE_ASC, ProductSort.PRICE_DESC):
        if not _PRICE_KEY.match(text):
            raise InvalidCursorError
        return Decimal(text)
    if len(text) > _NAME_KEY_MAX or "\x00" in text:
        raise InvalidCursorError
    return text


def _position(cursor: str, sort: ProductSort) -> tuple[Any, UUID]:
    position = decode_cursor(cursor, _CURSOR_KEYS)
    if position["sort"] != sort.value:
        raise CursorSortMismatchError(str(position["sort"])[:20], sort.value)
    try:
        return _parse_cursor_key(sort, position["key"]), UUID(position["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCursorError from exc


def listing_of(request: ListingRequest) -> Listing:
    # min_price above max_price is an empty range, not an error: a schema cannot say that one
    # parameter must not exceed another, and the document promises what it can say.
    after = _position(request.cursor, request.sort) if request.cursor is not None else None
    return Listing(
        sort=request.sort,
        category_id=request.category_id,
        min_price=request.min_price,
        max_price=request.max_price,
        in_stock=request.in_stock,
        q=request.q,
        after=after,
    )
