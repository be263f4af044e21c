"""The users module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.events.outbox import UnitOfWork
from app.modules.users.models import inbox, outbox
from app.modules.users.service import AccountService


class UsersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    uow = providers.Singleton(
        UnitOfWork,
        database=core.database,
        outbox=outbox,
        inbox=inbox,
        jobs=core.jobs,
        on_events_committed=core.bus.provided.notify,
    )
    accounts = providers.Singleton(
        AccountService, uow=uow, passwords=core.passwords, tokens=core.tokens
    )
