"""The account's secret tokens: refresh tokens (sessions), password-reset and
email-verification tokens, each stored as a digest."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security.rbac import Role
from app.modules.users.models import EmailVerificationToken, PasswordResetToken, RefreshToken, User


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
