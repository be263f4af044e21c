"""What orders serves other processes: its part of a person's data export (the core
`PersonalDataSource` port) over HTTP, for the client in app/modules/orders/client.py."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends

from app.core.module import INTERNAL_RESPONSES, internal_prefix
from app.modules.orders.dependencies import personal_data
from app.modules.orders.privacy import OrdersPersonalData

# Bumped with any change a caller could notice (docs/contracts/orders/internal-api.json).
API_VERSION = 1
router = APIRouter(prefix=internal_prefix("orders"), tags=["orders"])
PersonalData = Annotated[OrdersPersonalData, Depends(personal_data)]


@router.get(
    "/personal-data/{user_id}",
    response_model=dict[str, Any],
    summary="Everything orders holds about a person, for their data export",
    responses=INTERNAL_RESPONSES,
)
async def export_personal_data(user_id: UUID, source: PersonalData) -> dict[str, Any]:
    return await source.export(user_id)
