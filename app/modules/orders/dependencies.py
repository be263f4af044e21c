from __future__ import annotations

from typing import cast

from fastapi import Request

from app.modules.orders.container import OrdersContainer
from app.modules.orders.service import OrderService


def order_service(request: Request) -> OrderService:
    container = cast(OrdersContainer, request.app.state.containers["orders"])
    return container.orders()
