"""The catalog module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.container import unit_of_work
from app.modules.catalog.models import inbox, outbox
from app.modules.catalog.service import CategoryService, ProductService, StockService


class CatalogContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    uow = unit_of_work(core, outbox, inbox)
    products = providers.Singleton(ProductService, uow=uow)
    categories = providers.Singleton(CategoryService, uow=uow)
    stock = providers.Singleton(StockService)
