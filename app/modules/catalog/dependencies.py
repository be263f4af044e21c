from __future__ import annotations

from typing import cast

from fastapi import Request

from app.modules.catalog.container import CatalogContainer
from app.modules.catalog.service import CategoryService, ProductService


def _container(request: Request) -> CatalogContainer:
    return cast(CatalogContainer, request.app.state.containers["catalog"])


def product_service(request: Request) -> ProductService:
    return _container(request).products()


def category_service(request: Request) -> CategoryService:
    return _container(request).categories()


def http_max_age(request: Request) -> int:
    return _container(request).core.settings().catalog_http_max_age_s  # type: ignore[no-any-return]
