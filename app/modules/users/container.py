"""The users module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.container import unit_of_work
from app.modules.users.models import inbox, outbox
from app.modules.users.service import AccountService


class UsersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    uow = unit_of_work(core, outbox, inbox)
    accounts = providers.Singleton(
        AccountService, uow=uow, passwords=core.passwords, tokens=core.tokens
    )
