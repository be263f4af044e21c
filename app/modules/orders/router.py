from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.errors import ForbiddenError
from app.core.flags import FeatureFlags, feature_flags
from app.core.module import API_PREFIX
from app.core.openapi import links, required_headers
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, cursor_query
from app.core.security.dependencies import audited, current_principal, require
from app.core.security.rbac import Permission, Principal
from app.modules.orders.dependencies import idempotency_key, order_service
from app.modules.orders.models import OrderStatus
from app.modules.orders.schemas import OrderOut, OrderSummaryOut, PlaceOrderRequest
from app.modules.orders.service import Checkout, OrderService

router = APIRouter(prefix=f"{API_PREFIX}/orders", tags=["orders"])
Orders = Annotated[OrderService, Depends(order_service)]
REPLAYED_HEADER = "Idempotent-Replayed"
ORDER = f"{API_PREFIX}/orders/{{order_id}}"
# A feature flag (app/core/flags.py, docs/adr/0012): refuse at checkout what the catalog cannot
# supply, rolled out by share of customers.
STOCK_PRECHECK = "checkout-stock-precheck"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    summary="Place an order; it starts 'pending' and moves on as stock and payment answer",
    openapi_extra=required_headers("Idempotency-Key"),
    responses={
        201: {
            "description": "The order, pending",
            "links": links(
                "id",
                GetOrder=("get", ORDER, "order_id"),
                CancelOrder=("post", f"{ORDER}/cancel", "order_id"),
                ShipOrder=("post", f"{ORDER}/ship", "order_id"),
            ),
        },
        400: {"description": "Missing or malformed Idempotency-Key"},
        401: {"description": "Not authenticated"},
        403: {
            "description": "Needs orders:place, and a verified email address (problem type "
            "email-not-verified) unless REQUIRE_VERIFIED_EMAIL_FOR_ORDERS is false"
        },
        409: {
            "description": "More than the catalog has on sale (problem type out-of-stock), "
            "for customers the checkout-stock-precheck feature flag is on for; for the others "
            "the order is placed and then rejected"
        },
        422: {
            "description": "Invalid items or address, unknown products, mixed currencies, "
            "or an Idempotency-Key reused with a different body"
        },
    },
)
async def place_order(
    body: PlaceOrderRequest,
    orders: Orders,
    response: Response,
    principal: Annotated[Principal, Depends(require(Permission.ORDERS_PLACE))],
    key: Annotated[str, Depends(idempotency_key)],
    flags: Annotated[FeatureFlags, Depends(feature_flags)],
) -> OrderOut:
    check_stock = flags.enabled(STOCK_PRECHECK, str(principal.user_id))
    placed = await orders.place_order(
        Checkout(
            customer_id=principal.user_id,
            idempotency_key=key,
            items=[(item.product_id, item.quantity) for item in body.items],
            shipping_address=body.shipping_address.model_dump(mode="json"),
            payment_method=body.payment_method,
        ),
        check_stock=check_stock,
    )
    if placed.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return OrderOut.model_validate(placed.order)


@router.get(
    "",
    response_model=Page[OrderSummaryOut],
    summary="Orders, newest first: your own, or everyone's for staff (scope=all)",
    responses={
        400: {"description": "Invalid cursor"},
        401: {"description": "Not authenticated"},
        403: {"description": "scope=all or customer_id without orders:read_any"},
    },
)
async def list_orders(
    orders: Orders,
    principal: Annotated[Principal, Depends(current_principal)],
    scope: Annotated[str, Query(pattern="^(mine|all)$")] = "mine",
    order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer_id: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, cursor_query(max_length=500)] = None,
) -> Page[OrderSummaryOut]:
    staff_view = scope == "all" or customer_id is not None
    if staff_view and not principal.can(Permission.ORDERS_READ_ANY):
        raise ForbiddenError(
            f"Listing other customers' orders needs '{Permission.ORDERS_READ_ANY}'"
        )
    page = await orders.list_orders(
        limit=limit,
        cursor=cursor,
        customer_id=customer_id if staff_view else principal.user_id,
        status=order_status,
    )
    return Page[OrderSummaryOut](
        items=[OrderSummaryOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


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


@router.post(
    "/{order_id}/cancel",
    response_model=OrderOut,
    summary="Cancel your order before it ships: its stock is released, a payment refunded",
    responses={
        401: {"description": "Not authenticated"},
        404: {"description": "No such order of yours"},
        409: {"description": "The order can no longer be cancelled (its state is named)"},
    },
)
async def cancel_order(
    order_id: UUID,
    orders: Orders,
    principal: Annotated[Principal, Depends(current_principal)],
) -> OrderOut:
    return OrderOut.model_validate(await orders.cancel(order_id, principal))


@router.post(
    "/{order_id}/ship",
    response_model=OrderOut,
    summary="Mark a confirmed order shipped (needs orders:ship)",
    dependencies=[audited("orders.ship")],
    responses={
        401: {"description": "Not authenticated"},
        403: {"description": "Needs orders:ship"},
        404: {"description": "No such order"},
        409: {"description": "The order is not confirmed (its state is named)"},
    },
)
async def ship_order(
    order_id: UUID,
    orders: Orders,
    _: Annotated[Principal, Depends(require(Permission.ORDERS_SHIP))],
) -> OrderOut:
    return OrderOut.model_validate(await orders.ship(order_id))
