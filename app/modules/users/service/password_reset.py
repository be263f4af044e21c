"""Resetting a forgotten password by email."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.mail import Email, Mailer
from app.core.security.passwords import PasswordHasher
from app.modules.users.exceptions import InvalidResetTokenError
from app.modules.users.models import PasswordResetToken, User
from app.modules.users.password_policy import check_password
from app.modules.users.repository import AuditRepository, PasswordResetRepository, UserRepository
from app.modules.users.service.audit import AuditLog
from app.modules.users.service.sessions import Sessions
from app.modules.users.service.shared import new_secret_token, now_utc, token_digest, user_target

SEND_PASSWORD_RESET_JOB = "users.send_password_reset"  # noqa: S105 - a job name


class PasswordResetService:
    """Reset by email: the request never says whether the account exists; the job makes a
    single-use token, stores its digest and mails the token itself, which exists nowhere else;
    confirming sets the password, uses up every reset token of the account and ends its
    sessions."""

    def __init__(
        self,
        uow: UnitOfWork,
        passwords: PasswordHasher,
        sessions: Sessions,
        mailer: Mailer,
        audit: AuditLog,
        ttl_s: int,
        reset_url: str,
    ) -> None:
        self._audit = audit
        self._uow = uow
        self._passwords = passwords
        self._sessions = sessions
        self._mailer = mailer
        self._ttl = timedelta(seconds=ttl_s)
        self._reset_url = reset_url

    async def request_reset(self, email: str) -> None:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).by_email(email)
            if user is not None and user.is_active:
                tx.enqueue_after_commit(SEND_PASSWORD_RESET_JOB, str(user.id))

    async def send_reset_email(self, user_id: UUID) -> bool:
        """The job: False (and no email) when the account is gone or disabled meanwhile."""
        secret = new_secret_token()
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
            if user is None or not user.is_active:
                return False
            await PasswordResetRepository(tx.session).add(
                PasswordResetToken(
                    token_digest=token_digest(secret),
                    user_id=user.id,
                    expires_at=now_utc() + self._ttl,
                )
            )
        await self._mailer.send(self._reset_email(user.email, secret))
        return True

    def _reset_email(self, to: str, secret: str) -> Email:
        minutes = int(self._ttl.total_seconds() // 60)
        body = (
            "Someone asked to reset the password of your Keystone account.\n\n"
            f"Open {self._reset_url}?token={secret}\n"
            f"or send this token to POST /api/v1/auth/password-reset/confirm: {secret}\n\n"
            f"It works once, for {minutes} minutes. If it was not you, ignore this email."
        )
        return Email(to=to, subject="Reset your Keystone password", body=body)

    async def confirm(self, secret: str, new_password: str, origin: Origin = NO_ORIGIN) -> None:
        digest = token_digest(secret)
        try:
            async with self._uow.begin() as tx:
                user = await self._user_of_valid_token(tx, digest)
            # A weak password does not use the token.
            check_password(new_password, user.email, user.full_name)
            new_hash = await self._passwords.hash(new_password)
            async with self._uow.begin() as tx:
                user = await self._user_of_valid_token(tx, digest)  # again, under the row lock
                user.password_hash = new_hash
                await PasswordResetRepository(tx.session).use_all(user.id, now_utc())
                revoked = await self._sessions.revoke_all(tx, user.id)
                await AuditRepository(tx.session).add(
                    AuditEntry(
                        "users.password_reset",
                        Outcome.SUCCESS,
                        user.id,
                        user_target(user.id),
                        origin,
                    )
                )
        except InvalidResetTokenError:
            await self._audit.record(
                AuditEntry("users.password_reset", Outcome.FAILURE, origin=origin)
            )
            raise
        await self._sessions.revoke_access_tokens(revoked)

    async def _user_of_valid_token(self, tx: Transaction, digest: str) -> User:
        token = await PasswordResetRepository(tx.session).by_digest_for_update(digest)
        if token is None or token.used_at is not None or token.expires_at <= now_utc():
            raise InvalidResetTokenError
        user = await UserRepository(tx.session).get_for_update(token.user_id)
        if user is None or not user.is_active:
            raise InvalidResetTokenError
        return user
