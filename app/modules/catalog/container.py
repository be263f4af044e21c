"""The catalog module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.container import unit_of_work
from app.modules.catalog.models import inbox, outbox
from app.modules.catalog.service import (
    CacheTtl,
    CategoryService,
    ProductService,
    ReservationExpiry,
    StockService,
)
from app.modules.catalog.settings import CatalogSettings


class CatalogContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    settings = providers.Dependency(instance_of=CatalogSettings)
    uow = unit_of_work(core, outbox, inbox)
    ttl = providers.Singleton(
        CacheTtl,
        product_s=settings.provided.cache_product_ttl_s,
        listing_s=settings.provided.cache_listing_ttl_s,
        http_max_age_s=settings.provided.catalog_http_max_age_s,
    )
    products = providers.Singleton(ProductService, uow=uow, cache=core.cache, ttl=ttl)
    categories = providers.Singleton(CategoryService, uow=uow)
    stock = providers.Singleton(StockService)
    expiry = providers.Singleton(
        ReservationExpiry, uow=uow, ttl_s=settings.provided.reservation_ttl_s
    )
