"""What the catalog serves other processes: its facade (`CatalogFacade`) over HTTP, for the
HTTP client in app/modules/catalog/client.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import TypeAdapter

from app.core.module import INTERNAL_RESPONSES, internal_prefix
from app.modules.catalog.contracts import ProductSnapshot
from app.modules.catalog.dependencies import product_service
from app.modules.catalog.schemas import MAX_SNAPSHOT_IDS
from app.modules.catalog.service import ProductService

# Bumped with any change a caller could notice (docs/contracts/catalog/internal-api.json).
API_VERSION = 1
router = APIRouter(prefix=internal_prefix("catalog"), tags=["catalog"])
Products = Annotated[ProductService, Depends(product_service)]
_SNAPSHOTS = TypeAdapter(list[ProductSnapshot])


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
) -> Response:
    if include_archived:
        snapshots = await products.resolve_products(product_ids)
    else:
        snapshots = await products.products_for_order(product_ids)
    # Serialised once: through `response_model` (kept for the contract's schema) FastAPI would
    # validate the snapshots it was just handed over again first.
    return Response(_SNAPSHOTS.dump_json(snapshots), media_type="application/json")
