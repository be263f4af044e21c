from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, status

from app.core.module import API_PREFIX
from app.core.security.dependencies import current_principal, require
from app.core.security.rbac import Permission, Principal
from app.modules.orders.dependencies import order_service
from app.modules.orders.schemas import OrderOut, PlaceOrderRequest
from app.modules.orders.service import OrderService

router = APIRouter(prefix=f"{API_PREFIX}/orders", tags=["orders"])
Orders = Annotated[OrderService, Depends(order_service)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    summary="Place an order; it starts 'pending' and becomes 'confirmed' or 'rejected'",
    responses={
        401: {"description": "Not authenticated"},
        422: {"description": "Invalid items, unknown products or mixed currencies"},
    },
)
async def place_order(
    body: PlaceOrderRequest,
    orders: Orders,
    principal: Annotated[Principal, Depends(require(Permission.ORDERS_PLACE))],
) -> OrderOut:
    items = [(item.product_id, item.quantity) for item in body.items]
    return OrderOut.model_validate(await orders.place_order(principal.user_id, items))


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    summary="One of your orders, with its status history",
    responses={401: {"description": "Not authenticated"}, 404: {"description": "No such order"}},
)
async def get_order(
    order_id: UUID,
    orders: Orders,
    principal: Annotated[Principal, Depends(current_principal)],
) -> OrderOut:
    return OrderOut.model_validate(await orders.get_order(order_id, principal))
