"""The catalog module as the composition root sees it: built here, or reached over HTTP."""

from __future__ import annotations

from app.core.container import CoreContainer
from app.core.module import Module
from app.core.peers import Peer
from app.modules.catalog.client import CatalogClient
from app.modules.catalog.container import CatalogContainer
from app.modules.catalog.contracts import CatalogFacade
from app.modules.catalog.handlers import subscriptions
from app.modules.catalog.internal import router as internal_router
from app.modules.catalog.jobs import cron_jobs
from app.modules.catalog.router import router
from app.modules.catalog.service import ProductService
from app.modules.catalog.settings import CatalogSettings

# What the catalog reads from the environment, only where it is hosted.
SETTINGS = CatalogSettings


def build(core: CoreContainer) -> Module:
    container = CatalogContainer(core=core, settings=core.settings().module(SETTINGS))
    return Module(
        name="catalog",
        container=container,
        router=router,
        internal_router=internal_router,
        uow=container.uow(),
        subscriptions=subscriptions(container.uow(), container.stock(), container.products()),
        cron_jobs=cron_jobs(container.expiry()),
    )


def facade(module: Module) -> CatalogFacade:
    """What the catalog offers other modules in this process."""
    products: ProductService = module.container.products()
    return products


def remote_facade(peer: Peer) -> CatalogFacade:
    """What the catalog offers other modules, served by another process."""
    return CatalogClient(peer)
