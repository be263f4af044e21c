from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import any_, delete, exists, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditEntry
from app.core.db import Database
from app.core.security.rbac import Role
from app.modules.users.models import (
    SCHEMA,
    AuditRecord,
    EmailVerificationToken,
    PasswordResetToken,
    RefreshToken,
    User,
)

# What the account holder sees of their account.
PROFILE_COLUMNS = (User.id, User.email, User.full_name, User.roles, User.created_at)
_USERS = f"{SCHEMA}.{User.__tablename__}"
_VERIFIED = "email_verified_at IS NOT NULL AS email_verified"
# Every authenticated page of a client reads this: it runs on the driver itself, because
# SQLAlchemy would wrap the one-row SELECT in BEGIN/ROLLBACK and build an ORM object around it,
# several times the cost of the query.
_ACTIVE_PROFILE = (
    f"SELECT {', '.join(column.key for column in PROFILE_COLUMNS)}, {_VERIFIED} "  # noqa: S608 - our columns
    f"FROM {_USERS} WHERE id = $1 AND is_active"
)
_ACTIVE_VERIFIED = f"SELECT {_VERIFIED} FROM {_USERS} WHERE id = $1 AND is_active"  # noqa: S608


@dataclass(frozen=True)
class AuditQuery:
    before_id: int | None = None
    actor_id: UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _like_escaped(fragment: str) -> str:
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class UserReader:
    """Reads of one account on a pooled connection outside any transaction: no session, no
    identity map, no ORM objects."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def active_profile(self, user_id: UUID) -> dict[str, Any] | None:
        """The `PROFILE_COLUMNS` of an active account; None when it is missing or disabled."""
        return await self._database.read_row(_ACTIVE_PROFILE, user_id)

    async def email_verified(self, user_id: UUID) -> bool:
        """Whether an active account has verified its email; False for no such account."""
        row = await self._database.read_row(_ACTIVE_VERIFIED, user_id)
        return row is not None and bool(row["email_verified"])


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: UUID) -> User | None:
        return await self._session.get(User, user_id)

    async def get_for_update(self, user_id: UUID) -> User | None:
        return await self._session.get(User, user_id, with_for_update=True)

    async def by_email(self, email: str) -> User | None:
        query = select(User).where(func.lower(User.email) == email.lower())
        return (await self._session.execute(query)).scalar_one_or_none()

    async def add(self, user: User) -> None:
        self._session.add(user)
        await self._session.flush()

    async def lock_active_admins(self) -> list[UUID]:
        """The active admins' ids, their rows locked (in id order, so lockers queue, never
        deadlock) until the transaction ends: two demotions cannot both see 'another admin'."""
        query = (
            select(User.id)
            .where(literal(Role.ADMIN.value) == any_(User.roles), User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
        return list((await self._session.execute(query)).scalars())

    async def newest_first(
        self,
        limit: int,
        after: tuple[datetime, UUID] | None,
        email_contains: str | None,
        role: Role | None,
    ) -> list[User]:
        query = select(User).order_by(User.created_at.desc(), User.id.desc()).limit(limit)
        if after is not None:
            query = query.where(tuple_(User.created_at, User.id) < tuple_(*after))
        if email_contains:
            query = query.where(User.email.ilike(_like_escaped(email_contains), escape="\\"))
        if role is not None:
            query = query.where(literal(role.value) == any_(User.roles))
        return list((await self._session.execute(query)).scalars())


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def by_digest_for_update(self, digest: str) -> RefreshToken | None:
        query = select(RefreshToken).where(RefreshToken.token_digest == digest).with_for_update()
        return (await self._session.execute(query)).scalar_one_or_none()

    async def of_user(self, user_id: UUID) -> list[RefreshToken]:
        query = select(RefreshToken).where(RefreshToken.user_id == user_id)
        return list(
            (await self._session.execute(query.order_by(RefreshToken.created_at))).scalars()
        )

    async def family_revoked(self, family_id: UUID) -> bool:
        query = select(
            exists().where(
                RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None)
            )
        )
        return bool(await self._session.scalar(query))

    async def revoke_family(self, family_id: UUID, now: datetime) -> None:
        await self._session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_user_families(
        self, user_id: UUID, now: datetime, keep: UUID | None = None
    ) -> set[UUID]:
        """Revoke every live family of the user but `keep`; return the families revoked."""
        query = (
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(RefreshToken.family_id)
        )
        if keep is not None:
            query = query.where(RefreshToken.family_id != keep)
        return set((await self._session.execute(query)).scalars())


class PasswordResetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: PasswordResetToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def by_digest_for_update(self, digest: str) -> PasswordResetToken | None:
        query = (
            select(PasswordResetToken)
            .where(PasswordResetToken.token_digest == digest)
            .with_for_update()
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def delete_all(self, user_id: UUID) -> None:
        await self._session.execute(
            delete(PasswordResetToken).where(PasswordResetToken.user_id == user_id)
        )

    async def use_all(self, user_id: UUID, now: datetime) -> None:
        await self._session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
        )


class EmailVerificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: EmailVerificationToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def by_digest_for_update(self, digest: str) -> EmailVerificationToken | None:
        query = (
            select(EmailVerificationToken)
            .where(EmailVerificationToken.token_digest == digest)
            .with_for_update()
        )
        return (await self._session.execute(query)).scalar_one_or_none()

    async def use_all(self, user_id: UUID, now: datetime) -> None:
        await self._session.execute(
            update(EmailVerificationToken)
            .where(
                EmailVerificationToken.user_id == user_id,
                EmailVerificationToken.used_at.is_(None),
            )
            .values(used_at=now)
        )

    async def unverified_customers_before(self, cutoff: datetime, limit: int) -> list[User]:
        """Customer accounts registered before `cutoff` and never verified, locked; rows another
        sweep holds are skipped. Accounts given another role are left to their admins."""
        query = (
            select(User)
            .where(
                User.email_verified_at.is_(None),
                User.created_at < cutoff,
                User.roles == [Role.CUSTOMER.value],
            )
            .order_by(User.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(query)).scalars())

    async def delete_account(self, user_id: UUID) -> None:
        """The account and every token it has; its audit rows stay (append-only)."""
        for table in (RefreshToken, PasswordResetToken, EmailVerificationToken):
            await self._session.execute(delete(table).where(table.user_id == user_id))
        await self._session.execute(delete(User).where(User.id == user_id))


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: AuditEntry) -> None:
        """Once per `entry_id`: an entry recorded again (a retried call) is not stored twice."""
        await self._session.execute(
            pg_insert(AuditRecord)
            .values(
                entry_id=entry.entry_id,
                occurred_at=entry.occurred_at,
                actor_id=entry.actor_id,
                action=entry.action,
                target=entry.target,
                outcome=entry.outcome.value,
                ip=entry.origin.ip,
                request_id=entry.origin.request_id,
                detail=dict(entry.detail),
            )
            .on_conflict_do_nothing(index_elements=[AuditRecord.entry_id])
        )

    async def by_actor(self, actor_id: UUID) -> list[AuditRecord]:
        statement = select(AuditRecord).where(AuditRecord.actor_id == actor_id)
        return list((await self._session.execute(statement.order_by(AuditRecord.id))).scalars())

    async def newest_first(self, limit: int, query: AuditQuery) -> list[AuditRecord]:
        statement = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if query.before_id is not None:
            statement = statement.where(AuditRecord.id < query.before_id)
        if query.actor_id is not None:
            statement = statement.where(AuditRecord.actor_id == query.actor_id)
        if query.action is not None:
            statement = statement.where(AuditRecord.action == query.action)
        if query.since is not None:
            statement = statement.where(AuditRecord.occurred_at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditRecord.occurred_at < query.until)
        return list((await self._session.execute(statement)).scalars())


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def delete_expired_tokens(self, now: datetime) -> dict[str, int]:
        refresh = await self._session.execute(
            delete(RefreshToken).where(RefreshToken.expires_at < now)
        )
        reset = await self._session.execute(
            delete(PasswordResetToken).where(PasswordResetToken.expires_at < now)
        )
        verification = await self._session.execute(
            delete(EmailVerificationToken).where(EmailVerificationToken.expires_at < now)
        )
        return {
            "refresh_tokens": _count(refresh),
            "password_reset_tokens": _count(reset),
            "email_verification_tokens": _count(verification),
        }

    async def delete_audit_before(self, cutoff: datetime) -> int:
        # The append-only trigger lets a DELETE through only when this transaction says so.
        await self._session.execute(text("SET LOCAL keystone.audit_retention = 'on'"))
        result = await self._session.execute(
            delete(AuditRecord).where(AuditRecord.occurred_at < cutoff)
        )
        return _count(result)


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", 0)
    return int(rowcount or 0)
