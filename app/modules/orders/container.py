"""The orders module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from collections.abc import Callable

from dependency_injector import containers, providers
from redis.asyncio import Redis

from app.core.container import unit_of_work
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders.emails import OrderEmails
from app.modules.orders.models import inbox, outbox
from app.modules.orders.payments.http import HttpPayments
from app.modules.orders.payments.port import PaymentGateway
from app.modules.orders.payments.sandbox import SandboxPayments
from app.modules.orders.privacy import OrdersPersonalData
from app.modules.orders.service import OrderService, PaymentSaga
from app.modules.orders.settings import OrdersSettings
from app.modules.users.contracts import UsersFacade


def payment_gateway(settings: OrdersSettings, redis: Callable[[], Redis]) -> PaymentGateway:
    """PAYMENT_PROVIDER picks the adapter: the sandbox (its state in Redis), or a real
    provider's API."""
    if settings.payment_provider == "http":
        return HttpPayments(settings)
    return SandboxPayments(redis, slow_s=settings.payment_sandbox_slow_s)


class OrdersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    settings = providers.Dependency(instance_of=OrdersSettings)
    catalog: providers.Dependency[CatalogFacade] = providers.Dependency()
    users: providers.Dependency[UsersFacade] = providers.Dependency()
    uow = unit_of_work(core, outbox, inbox)
    payments = providers.Singleton(payment_gateway, settings=settings, redis=core.redis.provider)
    orders = providers.Singleton(
        OrderService,
        uow=uow,
        catalog=catalog,
        users=users,
        pending_timeout_s=settings.provided.order_pending_timeout_s,
        idempotency_key_ttl_s=settings.provided.idempotency_key_ttl_s,
        require_verified_email=settings.provided.require_verified_email_for_orders,
    )
    saga = providers.Singleton(
        PaymentSaga,
        uow=uow,
        payments=payments,
        redrive_after_s=settings.provided.payment_redrive_after_s,
    )
    personal_data = providers.Singleton(OrdersPersonalData, uow=uow)
    emails = providers.Singleton(
        OrderEmails,
        uow=uow,
        users=users,
        mailer=core.mailer,
        redrive_after_s=settings.provided.order_email_redrive_after_s,
    )
