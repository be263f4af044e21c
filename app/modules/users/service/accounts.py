"""An account's holder: registering, reading and changing the account, exporting and erasing
what Keystone holds about them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.events.outbox import UnitOfWork
from app.core.privacy import PersonalDataRegistry
from app.core.security.passwords import PasswordHasher
from app.core.security.rbac import Role
from app.core.security.tokens import AccessToken
from app.modules.users.contracts import Contact, UserErased, UserRegistered
from app.modules.users.exceptions import EmailTakenError, UserNotFoundError, WrongPasswordError
from app.modules.users.models import User
from app.modules.users.password_policy import check_password
from app.modules.users.repository import (
    AuditRepository,
    PasswordResetRepository,
    UserReader,
    UserRepository,
)
from app.modules.users.service.admin import lock_account
from app.modules.users.service.audit import AuditLog
from app.modules.users.service.sessions import Sessions
from app.modules.users.service.shared import new_secret_token, now_utc, user_target

SEND_VERIFICATION_EMAIL_JOB = "users.send_verification_email"


class AccountService:
    def __init__(
        self,
        uow: UnitOfWork,
        passwords: PasswordHasher,
        sessions: Sessions,
        audit: AuditLog,
        personal_data: PersonalDataRegistry,
    ) -> None:
        self._uow = uow
        self._passwords = passwords
        self._sessions = sessions
        self._audit = audit
        self._personal_data = personal_data

    async def register(
        self,
        email: str,
        password: str,
        full_name: str,
        roles: frozenset[Role] = frozenset(),
        *,
        email_verified: bool = False,
    ) -> User:
        """A self-registered account gets a verification email (sent after commit);
        `email_verified`: an operator vouches for the address (seed, create-admin)."""
        check_password(password, email, full_name)
        password_hash = await self._passwords.hash(password)
        user = User(
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            roles=sorted(roles or {Role.CUSTOMER}),
            email_verified_at=now_utc() if email_verified else None,
        )
        try:
            async with self._uow.begin() as tx:
                users = UserRepository(tx.session)
                if await users.by_email(email) is not None:
                    raise EmailTakenError
                await users.add(user)
                tx.publish(UserRegistered(user_id=user.id, email=user.email))
                if not email_verified:
                    tx.enqueue_after_commit(SEND_VERIFICATION_EMAIL_JOB, str(user.id))
        except IntegrityError as exc:  # a concurrent registration won the race
            raise EmailTakenError from exc
        return user

    async def profile(self, user_id: UUID) -> dict[str, Any]:
        """What an active account's holder sees of it (`PROFILE_COLUMNS`), read without a
        transaction or ORM objects: the hot path of every signed-in client."""
        profile = await UserReader(self._uow.database).active_profile(user_id)
        if profile is None:
            raise UserNotFoundError
        return profile

    async def get(self, user_id: UUID) -> User:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
        if user is None or not user.is_active:
            raise UserNotFoundError
        return user

    async def contact(self, user_id: UUID) -> Contact | None:
        """`UsersFacade.contact`: an erased account is disabled too, so it has none."""
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
        if user is None or not user.is_active:
            return None
        return Contact(user_id=user.id, email=user.email, full_name=user.full_name)

    async def email_verified(self, user_id: UUID) -> bool:
        """`UsersFacade.email_verified`: read on the driver, like the profile."""
        return await UserReader(self._uow.database).email_verified(user_id)

    async def update_profile(self, user_id: UUID, full_name: str) -> User:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get_for_update(user_id)
            if user is None or not user.is_active:
                raise UserNotFoundError
            user.full_name = full_name
        return user

    async def change_password(
        self, token: AccessToken, current: str, new: str, origin: Origin = NO_ORIGIN
    ) -> None:
        """Needs the current password; every other session of the account is revoked."""
        user = await self.get(token.principal.user_id)
        entry = AuditEntry(
            "users.password_change", Outcome.SUCCESS, user.id, user_target(user.id), origin
        )
        ok, _ = await self._passwords.verify(current, user.password_hash)
        if not ok:
            await self._audit.record(replace(entry, outcome=Outcome.FAILURE))
            raise WrongPasswordError
        check_password(new, user.email, user.full_name)
        new_hash = await self._passwords.hash(new)
        async with self._uow.begin() as tx:
            locked = await UserRepository(tx.session).get_for_update(user.id)
            if locked is None or not locked.is_active:
                raise UserNotFoundError
            locked.password_hash = new_hash
            revoked = await self._sessions.revoke_all(tx, user.id, keep=token.session_id)
            await AuditRepository(tx.session).add(entry)
        await self._sessions.revoke_access_tokens(revoked)

    async def export(self, user_id: UUID) -> dict[str, dict[str, Any]]:
        """Everything Keystone holds about the person, each module contributing its part."""
        await self.profile(user_id)
        return await self._personal_data.export(user_id)

    async def erase(self, token: AccessToken, password: str, origin: Origin = NO_ORIGIN) -> None:
        """The right to erasure: the account is anonymised and disabled, its sessions and reset
        tokens end, and `UserErased` tells every other module to erase what it holds about the
        person."""
        user = await self.get(token.principal.user_id)
        entry = AuditEntry("users.erase", Outcome.SUCCESS, user.id, user_target(user.id), origin)
        ok, _ = await self._passwords.verify(password, user.password_hash)
        if not ok:
            await self._audit.record(replace(entry, outcome=Outcome.FAILURE))
            raise WrongPasswordError
        unusable = await self._passwords.hash(new_secret_token())
        async with self._uow.begin() as tx:
            locked = await lock_account(tx, user.id, losing_admin=True)
            locked.email = f"erased-{user.id}@erased.invalid"
            locked.full_name = "Erased user"
            locked.password_hash = unusable
            locked.is_active = False
            await PasswordResetRepository(tx.session).delete_all(user.id)
            revoked = await self._sessions.revoke_all(tx, user.id)
            await AuditRepository(tx.session).add(entry)
            tx.publish(UserErased(user_id=user.id))
        await self._sessions.revoke_access_tokens(revoked)
