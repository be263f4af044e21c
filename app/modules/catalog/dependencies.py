from __future__ import annotations

from typing import cast

from fastapi import Request

from app.modules.catalog.container import CatalogContainer
from app.modules.catalog.service import CategoryService, ProductService


def _container(request: Request) -> CatalogContainer:
    return cast(CatalogContainer, request.app.state.containers["catalog"])


async def product_service(request: Request) -> ProductService:
    return _container(request).products()


async def category_service(request: Request) -> CategoryService:
    return _container(request).categories()
