"""What the catalog serves other processes: its facade (`CatalogFacade`) over HTTP, for the
HTTP client in app/modules/catalog/client.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from app.core.module import INTERNAL_RESPONSES, internal_prefix
from app.modules.catalog.contracts import ProductSnapshot
from app.modules.catalog.dependencies import product_service
from app.modules.catalog.schemas import MAX_SNAPSHOT_IDS
from app.modules.catalog.service import ProductService

# Bumped with any change a caller could notice (docs/contracts/catalog/internal-api.json).
API_VERSION = 1
router = APIRouter(prefix=internal_prefix("catalog"), tags=["catalog"])
Products = Annotated[ProductService, Depends(product_service)]


@router.get(
    "/products",
    response_model=list[ProductSnapshot],
    summary="Snapshots of the products among `id`: orderable ones only, or archived ones too",
    responses=INTERNAL_RESPONSES,
)
async def product_snapshots(
    products: Products,
    product_ids: Annotated[
        list[UUID], Query(alias="id", min_length=1, max_length=MAX_SNAPSHOT_IDS)
    ],
    include_archived: bool = False,
) -> list[ProductSnapshot]:
    if include_archived:
        return await products.resolve_products(product_ids)
    return await products.products_for_order(product_ids)
