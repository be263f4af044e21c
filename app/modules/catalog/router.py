from __future__ import annotations

import hashlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.core.module import API_PREFIX
from app.core.openapi import links
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, cursor_query
from app.core.security.dependencies import audited, require
from app.core.security.rbac import Permission, Principal
from app.core.validation import Name
from app.modules.catalog.dependencies import category_service, product_service
from app.modules.catalog.schemas import (
    CategoryCreate,
    CategoryOut,
    CategoryUpdate,
    PriceText,
    ProductCreate,
    ProductOut,
    ProductSort,
    ProductUpdate,
    StockOut,
    StockUpdate,
)
from app.modules.catalog.service import CategoryService, ListingRequest, ProductService

router = APIRouter(prefix=f"{API_PREFIX}/catalog", tags=["catalog"])
Products = Annotated[ProductService, Depends(product_service)]
Categories = Annotated[CategoryService, Depends(category_service)]
CatalogWriter = Depends(require(Permission.CATALOG_WRITE))
Writer = Annotated[Principal, CatalogWriter]
JSON = "application/json"
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Needs the catalog:write permission"},
    422: {"description": "Invalid input (problem+json naming each field)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such product"}}
PRODUCT = f"{API_PREFIX}/catalog/products/{{product_id}}"
CATEGORY = f"{API_PREFIX}/catalog/categories/{{category_id}}"
QueryPrice = Annotated[PriceText | None, Query()]


def _etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison: W/ prefixes are ignored, `*` matches any current version."""
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


# --- products (reads first: routes are tried in this order) --------------------------------


@router.get(
    "/products",
    response_model=Page[ProductOut],
    summary="List products: filters, sort, full-text search `q`, cursor pagination",
    responses={
        400: {"description": "Invalid cursor, or a cursor of another sort"},
        422: {"description": "Invalid parameter (problem+json naming each field)"},
    },
)
async def list_products(
    products: Products,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    # A name-sorted cursor carries the name: 200 non-ASCII characters encode to ~1,650.
    cursor: Annotated[str | None, cursor_query(max_length=2_000)] = None,
    sort: ProductSort = ProductSort.NEWEST,
    category_id: Annotated[
        UUID | None, Query(description="This category and its subcategories")
    ] = None,
    min_price: QueryPrice = None,
    max_price: QueryPrice = None,
    in_stock: bool | None = None,
    q: Annotated[
        Name | None, Query(description="Words to find in name, SKU or description")
    ] = None,
) -> Response:
    request = ListingRequest(
        limit=limit,
        cursor=cursor,
        sort=sort,
        category_id=category_id,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
        q=q,
    )
    return Response(await products.page_json(request), media_type=JSON)


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="One product (ETag: send If-None-Match to get 304 when unchanged)",
    responses={
        **NOT_FOUND,
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
    },
)
async def get_product(product_id: UUID, products: Products, request: Request) -> Response:
    # The hottest route: one dependency and a header read by hand keep FastAPI's per-request
    # work small (If-None-Match is documented by the 304 response).
    body = await products.product_json(product_id)
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": products.cache_control}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductOut,
    dependencies=[CatalogWriter, audited("catalog.product_create")],
    summary="Create a product (staff or admin)",
    responses={
        201: {
            "description": "The product",
            "links": links(
                "id",
                GetProduct=("get", PRODUCT, "product_id"),
                UpdateProduct=("patch", PRODUCT, "product_id"),
                SetStock=("put", f"{PRODUCT}/stock", "product_id"),
                ArchiveProduct=("delete", PRODUCT, "product_id"),
            ),
        },
        409: {"description": "SKU already used"},
        **WRITE_PROBLEMS,
    },
)
async def create_product(body: ProductCreate, products: Products) -> ProductOut:
    return ProductOut.model_validate(await products.create_product(body))


@router.patch(
    "/products/{product_id}",
    response_model=ProductOut,
    dependencies=[CatalogWriter, audited("catalog.product_update")],
    summary="Change some fields of a product (staff or admin)",
    responses={**NOT_FOUND, 409: {"description": "SKU already used"}, **WRITE_PROBLEMS},
)
async def update_product(product_id: UUID, body: ProductUpdate, products: Products) -> ProductOut:
    return ProductOut.model_validate(await products.update_product(product_id, body))


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CatalogWriter, audited("catalog.product_archive")],
    summary="Archive a product: gone from the shop, still known to past orders",
    responses={**NOT_FOUND, **WRITE_PROBLEMS},
)
async def archive_product(product_id: UUID, products: Products) -> Response:
    await products.archive_product(product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/products/{product_id}/stock",
    response_model=StockOut,
    dependencies=[CatalogWriter, audited("catalog.stock_set")],
    summary="Set the units on hand after a count (staff or admin); reservations stay held",
    responses={
        **NOT_FOUND,
        409: {"description": "Fewer units than open orders have reserved"},
        **WRITE_PROBLEMS,
    },
)
async def set_stock(
    product_id: UUID, body: StockUpdate, products: Products, writer: Writer
) -> StockOut:
    return await products.set_stock(product_id, body.on_hand, changed_by=writer.user_id)


# --- categories ----------------------------------------------------------------------------

CATEGORY_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such category"}}


@router.get("/categories", response_model=list[CategoryOut], summary="All categories")
async def list_categories(categories: Categories) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c) for c in await categories.list_categories()]


@router.post(
    "/categories",
    status_code=status.HTTP_201_CREATED,
    response_model=CategoryOut,
    dependencies=[CatalogWriter, audited("catalog.category_create")],
    summary="Create a category, optionally under a top-level parent (staff or admin)",
    responses={
        201: {
            "description": "The category",
            "links": links(
                "id",
                UpdateCategory=("patch", CATEGORY, "category_id"),
                DeleteCategory=("delete", CATEGORY, "category_id"),
            ),
        },
        409: {"description": "Name already used"},
        **WRITE_PROBLEMS,
    },
)
async def create_category(body: CategoryCreate, categories: Categories) -> CategoryOut:
    created = await categories.create_category(body.name, body.parent_id)
    return CategoryOut.model_validate(created)


@router.patch(
    "/categories/{category_id}",
    response_model=CategoryOut,
    dependencies=[CatalogWriter, audited("catalog.category_update")],
    summary="Rename or move a category (staff or admin)",
    responses={**CATEGORY_NOT_FOUND, 409: {"description": "Name already used"}, **WRITE_PROBLEMS},
)
async def update_category(
    category_id: UUID, body: CategoryUpdate, categories: Categories
) -> CategoryOut:
    return CategoryOut.model_validate(await categories.update_category(category_id, body))


@router.delete(
    "/categories/{category_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CatalogWriter, audited("catalog.category_delete")],
    summary="Delete an unused category (staff or admin)",
    responses={
        **CATEGORY_NOT_FOUND,
        409: {"description": "Products or subcategories still use it"},
        **WRITE_PROBLEMS,
    },
)
async def delete_category(category_id: UUID, categories: Categories) -> Response:
    await categories.delete_category(category_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
