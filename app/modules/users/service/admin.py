"""What holders of `users:manage` do, and the rule that keeps one active admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from uuid import UUID

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.errors import DomainError
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.pagination import (
    KeysetPage,
    decode_newest_first_cursor,
    keyset_page,
    newest_first_position,
)
from app.core.security.rbac import Principal, Role
from app.modules.users.exceptions import LastAdminError, UserNotFoundError
from app.modules.users.models import User
from app.modules.users.repository import AuditRepository, UserRepository
from app.modules.users.service.audit import AuditLog
from app.modules.users.service.sessions import Sessions
from app.modules.users.service.shared import user_target


class AdminService:
    """What holders of `users:manage` do: list accounts, set roles, disable accounts."""

    def __init__(self, uow: UnitOfWork, sessions: Sessions, audit: AuditLog) -> None:
        self._uow = uow
        self._sessions = sessions
        self._audit = audit

    async def list_users(
        self, limit: int, cursor: str | None, email_contains: str | None, role: Role | None
    ) -> KeysetPage[User]:
        after = None if cursor is None else decode_newest_first_cursor(cursor, "created_at")
        async with self._uow.begin() as tx:
            users = UserRepository(tx.session)
            return await keyset_page(
                limit,
                lambda size: users.newest_first(size, after, email_contains, role),
                lambda user: newest_first_position("created_at", user.created_at, user.id),
            )

    async def set_roles(
        self, actor: Principal, user_id: UUID, roles: frozenset[Role], origin: Origin = NO_ORIGIN
    ) -> User:
        """New roles take effect at the next login: the account's sessions are revoked, so no
        token keeps carrying the old roles."""
        entry = AuditEntry(
            "users.roles_change",
            Outcome.SUCCESS,
            actor.user_id,
            user_target(user_id),
            origin,
            {"roles": sorted(roles)},
        )
        async with self._audited_failure(entry), self._uow.begin() as tx:
            user = await lock_account(tx, user_id, losing_admin=Role.ADMIN not in roles)
            previous, user.roles = list(user.roles), sorted(roles)
            revoked = await self._sessions.revoke_all(tx, user.id)
            detail = {**entry.detail, "previous": previous}
            await AuditRepository(tx.session).add(replace(entry, detail=detail))
        await self._sessions.revoke_access_tokens(revoked)
        return user

    async def disable(self, actor: Principal, user_id: UUID, origin: Origin = NO_ORIGIN) -> User:
        entry = AuditEntry(
            "users.disable", Outcome.SUCCESS, actor.user_id, user_target(user_id), origin
        )
        async with self._audited_failure(entry), self._uow.begin() as tx:
            user = await lock_account(tx, user_id, losing_admin=True)
            user.is_active = False
            revoked = await self._sessions.revoke_all(tx, user.id)
            await AuditRepository(tx.session).add(entry)
        await self._sessions.revoke_access_tokens(revoked)
        return user

    @asynccontextmanager
    async def _audited_failure(self, entry: AuditEntry) -> AsyncIterator[None]:
        """A refused admin action is recorded too, with the rule that refused it."""
        try:
            yield
        except DomainError as error:
            failure = {**entry.detail, "error": error.code}
            await self._audit.record(replace(entry, outcome=Outcome.FAILURE, detail=failure))
            raise


async def lock_account(tx: Transaction, user_id: UUID, losing_admin: bool) -> User:
    """The account, locked; refused when the change would leave no active admin."""
    users = UserRepository(tx.session)
    admins = await users.lock_active_admins()  # first, always: one lock order for all
    user = await users.get_for_update(user_id)
    if user is None:
        raise UserNotFoundError
    if losing_admin and admins == [user.id]:
        raise LastAdminError
    return user
