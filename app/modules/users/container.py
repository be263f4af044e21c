"""The users module's dependency-injection container: its app-lifetime objects."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.core.container import unit_of_work
from app.core.security.keys import signing_keys
from app.core.security.tokens import TokenIssuer
from app.modules.users.models import inbox, outbox
from app.modules.users.service import (
    AccountService,
    AdminService,
    AuditLog,
    AuthService,
    PasswordResetService,
    RetentionService,
    Sessions,
    UsersPersonalData,
)
from app.modules.users.settings import UsersSettings
from app.modules.users.verification import EmailVerificationService


class UsersContainer(containers.DeclarativeContainer):
    core = providers.DependenciesContainer()
    settings = providers.Dependency(instance_of=UsersSettings)
    uow = unit_of_work(core, outbox, inbox)
    # The one private key of the deployment: users signs, every process verifies.
    signing_keys = providers.Singleton(signing_keys, settings=core.settings)
    issuer = providers.Singleton(TokenIssuer, settings=core.settings, keys=signing_keys)
    sessions = providers.Singleton(
        Sessions,
        tokens=issuer,
        revocations=core.revocations,
        refresh_ttl_s=settings.provided.refresh_token_ttl_s,
    )
    audit = providers.Singleton(AuditLog, uow=uow)
    personal_data = providers.Singleton(UsersPersonalData, uow=uow)
    accounts = providers.Singleton(
        AccountService,
        uow=uow,
        passwords=core.passwords,
        sessions=sessions,
        audit=audit,
        personal_data=core.personal_data,
    )
    auth = providers.Singleton(
        AuthService, uow=uow, passwords=core.passwords, sessions=sessions, audit=audit
    )
    admin = providers.Singleton(AdminService, uow=uow, sessions=sessions, audit=audit)
    resets = providers.Singleton(
        PasswordResetService,
        uow=uow,
        passwords=core.passwords,
        sessions=sessions,
        mailer=core.mailer,
        audit=audit,
        ttl_s=settings.provided.password_reset_ttl_s,
        reset_url=settings.provided.password_reset_url,
    )
    retention = providers.Singleton(
        RetentionService,
        uow=uow,
        audit_retention_days=settings.provided.audit_retention_days,
    )
    verification = providers.Singleton(
        EmailVerificationService,
        uow=uow,
        sessions=sessions,
        mailer=core.mailer,
        audit=audit,
        ttl_s=settings.provided.email_verification_ttl_s,
        verify_url=settings.provided.email_verification_url,
        retention_days=settings.provided.unverified_retention_days,
    )
