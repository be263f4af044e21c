from __future__ import annotations

import re
from typing import Annotated, cast

from fastapi import Header, Request

from app.modules.orders.container import OrdersContainer
from app.modules.orders.exceptions import IdempotencyKeyMissingError, InvalidIdempotencyKeyError
from app.modules.orders.privacy import OrdersPersonalData
from app.modules.orders.service import OrderService

MAX_IDEMPOTENCY_KEY_LENGTH = 255
_WELL_FORMED_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,%d}$" % MAX_IDEMPOTENCY_KEY_LENGTH)  # noqa: UP031


def _container(request: Request) -> OrdersContainer:
    return cast(OrdersContainer, request.app.state.containers["orders"])


async def order_service(request: Request) -> OrderService:
    return _container(request).orders()


async def personal_data(request: Request) -> OrdersPersonalData:
    return _container(request).personal_data()


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A unique value per checkout (e.g. a UUID); repeating it with the same "
            "body returns the same order instead of placing another.",
            # Checked below (a 400 rather than a 422, as for a missing key), documented here.
            json_schema_extra={
                "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
                "pattern": _WELL_FORMED_KEY.pattern,
            },
        ),
    ] = None,
) -> str:
    if key is None:
        raise IdempotencyKeyMissingError
    if not _WELL_FORMED_KEY.match(key):
        raise InvalidIdempotencyKeyError(MAX_IDEMPOTENCY_KEY_LENGTH)
    return key
