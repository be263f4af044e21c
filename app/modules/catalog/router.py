from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, status

from app.core.module import API_PREFIX
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from app.core.security.dependencies import audited, require
from app.core.security.rbac import Permission
from app.modules.catalog.dependencies import category_service, product_service
from app.modules.catalog.schemas import CategoryCreate, CategoryOut, ProductCreate, ProductOut
from app.modules.catalog.service import CategoryService, ProductService

router = APIRouter(prefix=f"{API_PREFIX}/catalog", tags=["catalog"])
Products = Annotated[ProductService, Depends(product_service)]
Categories = Annotated[CategoryService, Depends(category_service)]
CatalogWriter = Depends(require(Permission.CATALOG_WRITE))
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Needs the catalog:write permission"},
    422: {"description": "Invalid input (problem+json naming each field)"},
}


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductOut,
    dependencies=[CatalogWriter, audited("catalog.product_create")],
    summary="Create a product (staff or admin)",
    responses={409: {"description": "SKU already used"}, **WRITE_PROBLEMS},
)
async def create_product(body: ProductCreate, products: Products) -> ProductOut:
    return ProductOut.model_validate(await products.create_product(body))


@router.get(
    "/products",
    response_model=Page[ProductOut],
    summary="List products, newest first (cursor pagination)",
    responses={400: {"description": "Invalid cursor"}},
)
async def list_products(
    products: Products,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[ProductOut]:
    page = await products.list_products(limit, cursor)
    return Page[ProductOut](
        items=[ProductOut.model_validate(p) for p in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="One product",
    responses={404: {"description": "No such product"}},
)
async def get_product(product_id: UUID, products: Products) -> ProductOut:
    return ProductOut.model_validate(await products.get_product(product_id))


@router.get("/categories", response_model=list[CategoryOut], summary="All categories")
async def list_categories(categories: Categories) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c) for c in await categories.list_categories()]


@router.post(
    "/categories",
    status_code=status.HTTP_201_CREATED,
    response_model=CategoryOut,
    dependencies=[CatalogWriter],
    summary="Create a category (staff or admin)",
    responses={409: {"description": "Name already used"}, **WRITE_PROBLEMS},
)
async def create_category(body: CategoryCreate, categories: Categories) -> CategoryOut:
    return CategoryOut.model_validate(await categories.create_category(body.name))
