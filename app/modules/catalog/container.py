"""The catalog module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.events.outbox import UnitOfWork
from app.modules.catalog.models import inbox, outbox
from app.modules.catalog.service import CategoryService, ProductService, StockService


class CatalogContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    uow = providers.Singleton(
        UnitOfWork,
        database=core.database,
        outbox=outbox,
        inbox=inbox,
        jobs=core.jobs,
        on_events_committed=core.bus.provided.notify,
    )
    products = providers.Singleton(ProductService, uow=uow)
    categories = providers.Singleton(CategoryService, uow=uow)
    stock = providers.Singleton(StockService)
