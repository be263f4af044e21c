"""The orders module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.events.outbox import UnitOfWork
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.models import inbox, outbox
from app.modules.orders.service import OrderService


class OrdersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    catalog: providers.Dependency[CatalogFacade] = providers.Dependency()
    uow = providers.Singleton(
        UnitOfWork,
        database=core.database,
        outbox=outbox,
        inbox=inbox,
        jobs=core.jobs,
        on_events_committed=core.bus.provided.notify,
    )
    orders = providers.Singleton(
        OrderService,
        uow=uow,
        catalog=catalog,
        pending_timeout_s=core.settings.provided.order_pending_timeout_s,
    )
