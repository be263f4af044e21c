"""The orders module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.container import unit_of_work
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.models import inbox, outbox
from app.modules.orders.service import OrderService


class OrdersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    catalog: providers.Dependency[CatalogFacade] = providers.Dependency()
    uow = unit_of_work(core, outbox, inbox)
    orders = providers.Singleton(
        OrderService,
        uow=uow,
        catalog=catalog,
        pending_timeout_s=core.settings.provided.order_pending_timeout_s,
    )
