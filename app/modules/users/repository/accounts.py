"""Accounts: the hot profile read on the driver, and the account rows in a session."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import any_, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database
from app.core.security.rbac import Role
from app.modules.users.models import SCHEMA, User

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
