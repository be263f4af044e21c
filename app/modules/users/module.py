"""The users module as the composition root sees it: built here, or reached over HTTP."""

from __future__ import annotations

from app.core.audit import AuditTrail
from app.core.container import CoreContainer
from app.core.jobs import JobQueue
from app.core.module import Module
from app.core.peers import Peer
from app.modules.users.client import AuditTrailClient, UsersClient
from app.modules.users.container import UsersContainer
from app.modules.users.contracts import UsersFacade
from app.modules.users.internal import router as internal_router
from app.modules.users.jobs import cron_jobs, jobs
from app.modules.users.router import router
from app.modules.users.service import AccountService
from app.modules.users.settings import UsersSettings

# What users reads from the environment, only where it is hosted.
SETTINGS = UsersSettings


def build(core: CoreContainer) -> Module:
    container = UsersContainer(core=core, settings=core.settings().module(SETTINGS))
    return Module(
        name="users",
        container=container,
        router=router,
        internal_router=internal_router,
        uow=container.uow(),
        jobs=jobs(container.resets(), container.verification(), container.audit()),
        cron_jobs=cron_jobs(container.retention(), container.verification()),
        personal_data=container.personal_data(),
    )


def audit_trail(module: Module) -> AuditTrail:
    """The audit table, as the core port other modules record their admin actions through."""
    trail: AuditTrail = module.container.audit()
    return trail


def facade(module: Module) -> UsersFacade:
    """What users offers other modules in this process."""
    accounts: AccountService = module.container.accounts()
    return accounts


def remote_facade(peer: Peer) -> UsersFacade:
    """What users offers other modules, served by another process."""
    return UsersClient(peer)


def remote_audit_trail(peer: Peer, jobs: JobQueue) -> AuditTrail:
    """The audit table of a users module served by another process."""
    return AuditTrailClient(peer, jobs)
