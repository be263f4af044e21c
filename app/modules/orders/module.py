"""The orders module as the composition root sees it: built here, or reached over HTTP."""

from __future__ import annotations

from app.core.container import CoreContainer
from app.core.module import Module
from app.core.peers import Peer
from app.core.privacy import PersonalDataSource
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.client import PersonalDataClient
from app.modules.orders.container import OrdersContainer
from app.modules.orders.emails import OrderEmails
from app.modules.orders.handlers import subscriptions
from app.modules.orders.internal import router as internal_router
from app.modules.orders.jobs import cron_jobs, jobs
from app.modules.orders.metrics import order_metrics
from app.modules.orders.payments.port import PaymentGateway
from app.modules.orders.router import router
from app.modules.orders.service import OrderService, PaymentSaga
from app.modules.orders.settings import OrdersSettings
from app.modules.users.contracts import UsersFacade

# What orders reads from the environment, only where it is hosted.
SETTINGS = OrdersSettings


def build(core: CoreContainer, catalog: CatalogFacade, users: UsersFacade) -> Module:
    settings = core.settings().module(SETTINGS)
    container = OrdersContainer(core=core, settings=settings, catalog=catalog, users=users)
    orders: OrderService = container.orders()
    saga: PaymentSaga = container.saga()
    emails: OrderEmails = container.emails()
    payments: PaymentGateway = container.payments()
    return Module(
        name="orders",
        container=container,
        router=router,
        internal_router=internal_router,
        uow=container.uow(),
        subscriptions=subscriptions(container.uow(), orders),
        jobs=jobs(orders, saga, emails, settings),
        cron_jobs=cron_jobs(orders, saga, emails),
        personal_data=container.personal_data(),
        on_stop=(payments.close,),
        metrics=order_metrics(container.uow(), payments),
    )


def remote_personal_data(peer: Peer) -> PersonalDataSource:
    """orders' part of a data export, served by another process."""
    return PersonalDataClient(peer)
