"""Email verification: proving that the address an account registered with is its holder's.

Registering asks for `SEND_VERIFICATION_EMAIL_JOB` after commit (`AccountService.register`).
The job makes a single-use token, stores its SHA-256 digest with the address it verifies and
an expiry, and mails the token itself, which exists nowhere else. Presenting it verifies the
account and uses up every verification token the account has. A signed-in holder may ask for
another email (rate-limited in the router). Accounts still unverified
UNVERIFIED_RETENTION_DAYS after registering are deleted by a cron, each deletion audited.

Orders asks `UsersFacade.email_verified` at checkout (docs/adr/0005-email-verification.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.jobs import RetryLater
from app.core.logging import get_logger
from app.core.mail import Email, Mailer, MailRefusedError, MailUnavailableError
from app.modules.users.contracts import UserErased
from app.modules.users.exceptions import (
    EmailAlreadyVerifiedError,
    InvalidVerificationTokenError,
    UserNotFoundError,
)
from app.modules.users.models import EmailVerificationToken, User
from app.modules.users.repository import (
    AuditRepository,
    EmailVerificationRepository,
    UserRepository,
)
from app.modules.users.service import (
    SEND_VERIFICATION_EMAIL_JOB,
    AuditLog,
    Sessions,
    new_secret_token,
    token_digest,
)
from app.modules.users.service.shared import now_utc, user_target

_log = get_logger("keystone.users")
VERIFIED = "users.email_verified"
REMOVED = "users.unverified_account_deleted"
SWEEP_BATCH = 500


class EmailVerificationService:
    def __init__(
        self,
        uow: UnitOfWork,
        sessions: Sessions,
        mailer: Mailer,
        audit: AuditLog,
        ttl_s: int,
        verify_url: str,
        retention_days: int,
    ) -> None:
        self._uow = uow
        self._sessions = sessions
        self._mailer = mailer
        self._audit = audit
        self._ttl = timedelta(seconds=ttl_s)
        self._verify_url = verify_url
        self._retention = timedelta(days=retention_days)

    async def request_email(self, user_id: UUID) -> None:
        """The signed-in holder asks for another email (the first was lost, or expired)."""
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
            if user is None or not user.is_active:
                raise UserNotFoundError
            if user.email_verified:
                raise EmailAlreadyVerifiedError
            tx.enqueue_after_commit(SEND_VERIFICATION_EMAIL_JOB, str(user.id))

    async def send(self, user_id: UUID) -> str:
        """The job: a new token, mailed; nothing when the account is gone or verified meanwhile.
        A mail server that cannot take it now is retried; one that refuses it is final."""
        secret = new_secret_token()
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
            if user is None or not user.is_active:
                return "no such account"
            if user.email_verified:
                return "verified already"
            await EmailVerificationRepository(tx.session).add(
                EmailVerificationToken(
                    token_digest=token_digest(secret),
                    user_id=user.id,
                    email=user.email,
                    expires_at=now_utc() + self._ttl,
                )
            )
        try:
            await self._mailer.send(self._email(user, secret))
        except MailUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        except MailRefusedError as refused:
            _log.error("verification email refused", user_id=str(user_id), reason=str(refused))
            return "refused"
        return "sent"

    def _email(self, user: User, secret: str) -> Email:
        hours = int(self._ttl.total_seconds() // 3600)
        body = (
            f"Hello {user.full_name},\n\n"
            "please confirm that this address is yours, to finish setting up your Keystone "
            "account.\n\n"
            f"Open {self._verify_url}?token={secret}\n"
            f"or send this token to POST /api/v1/auth/verify-email: {secret}\n\n"
            f"It works once, for {hours} hours. If you did not register, ignore this email: "
            "the account is deleted if nobody confirms it."
        )
        return Email(to=user.email, subject="Confirm your Keystone email address", body=body)

    async def verify(self, secret: str, origin: Origin = NO_ORIGIN) -> None:
        try:
            async with self._uow.begin() as tx:
                user = await self._user_of_valid_token(tx, token_digest(secret))
                if user.email_verified_at is None:
                    user.email_verified_at = now_utc()
                await EmailVerificationRepository(tx.session).use_all(user.id, now_utc())
                await AuditRepository(tx.session).add(
                    AuditEntry(VERIFIED, Outcome.SUCCESS, user.id, user_target(user.id), origin)
                )
        except InvalidVerificationTokenError:
            await self._audit.record(AuditEntry(VERIFIED, Outcome.FAILURE, origin=origin))
            raise
        _log.info("email verified", user_id=str(user.id))

    async def _user_of_valid_token(self, tx: Transaction, digest: str) -> User:
        token = await EmailVerificationRepository(tx.session).by_digest_for_update(digest)
        if token is None or token.used_at is not None or token.expires_at <= now_utc():
            raise InvalidVerificationTokenError
        user = await UserRepository(tx.session).get_for_update(token.user_id)
        # An erased account's address changed: the token verified the old one only.
        if user is None or not user.is_active or user.email.lower() != token.email.lower():
            raise InvalidVerificationTokenError
        return user

    async def remove_unverified(self, at: datetime | None = None) -> int:
        """The cron: delete customer accounts never verified within the retention period,
        their tokens and sessions with them; each deletion is audited and announced
        (`UserErased`), so other modules erase what they hold about the person."""
        cutoff = (at or now_utc()) - self._retention
        revoked: set[UUID] = set()
        async with self._uow.begin() as tx:
            verifications = EmailVerificationRepository(tx.session)
            stale = await verifications.unverified_customers_before(cutoff, SWEEP_BATCH)
            for user in stale:
                revoked |= await self._sessions.revoke_all(tx, user.id)
                await verifications.delete_account(user.id)
                detail = {"registered_at": user.created_at.isoformat()}
                await AuditRepository(tx.session).add(
                    AuditEntry(REMOVED, Outcome.SUCCESS, None, user_target(user.id), detail=detail)
                )
                tx.publish(UserErased(user_id=user.id))
        await self._sessions.revoke_access_tokens(revoked)
        if stale:
            _log.info("unverified accounts deleted", accounts=len(stale))
        return len(stale)
