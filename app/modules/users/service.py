"""Use cases of the users module: accounts, sessions (login, refresh, logout) and their admin.

A session is a family of refresh tokens. Logging in opens one; each refresh uses up the token
presented and adds the next to the family; presenting a used token again means it was stolen
(or replayed), so the whole family is revoked. Only SHA-256 digests of refresh tokens are
stored. Revoking a session also lists its id in Redis (`TokenRevocations`) so the access tokens
it issued stop working at once, not when they expire.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.exc import IntegrityError

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.errors import DomainError
from app.core.events.outbox import Transaction, UnitOfWork
from app.core.logging import get_logger
from app.core.mail import Email, Mailer
from app.core.pagination import InvalidCursorError, decode_cursor, encode_cursor
from app.core.privacy import PersonalDataRegistry
from app.core.security.passwords import PasswordHasher
from app.core.security.rbac import Principal, Role
from app.core.security.revocation import TokenRevocations
from app.core.security.tokens import AccessToken, TokenIssuer
from app.modules.users.contracts import Contact, UserErased, UserRegistered
from app.modules.users.exceptions import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidResetTokenError,
    LastAdminError,
    UserNotFoundError,
    WrongPasswordError,
)
from app.modules.users.models import AuditRecord, PasswordResetToken, RefreshToken, User
from app.modules.users.password_policy import check_password
from app.modules.users.repository import (
    AuditQuery,
    AuditRepository,
    PasswordResetRepository,
    RefreshTokenRepository,
    RetentionRepository,
    UserReader,
    UserRepository,
)

_log = get_logger("keystone.users")
_CURSOR_KEYS = frozenset({"created_at", "id"})
SEND_PASSWORD_RESET_JOB = "users.send_password_reset"  # noqa: S105 - a job name
SEND_VERIFICATION_EMAIL_JOB = "users.send_verification_email"
# Sent by other processes' audit clients while users could not be reached (users/client.py).
RECORD_AUDIT_ENTRY_JOB = "users.record_audit_entry"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_token() -> str:
    """256 bits from the OS's CSPRNG: a digest of it cannot be brute-forced back."""
    return secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


def _roles(user: User) -> frozenset[Role]:
    return frozenset(Role(role) for role in user.roles)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def _user(user_id: UUID) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True)
class UserPage:
    items: list[User]
    next_cursor: str | None


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditRecord]
    next_cursor: str | None


class AuditLog:
    """The users module's implementation of the core `AuditTrail` port: an append-only table.

    Services of this module write their successes in the transaction of the change itself
    (`AuditRepository(tx.session).add`); `record` is for failures, whose transaction is rolled
    back, and for other modules, through the port.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def record(self, entry: AuditEntry) -> None:
        async with self._uow.begin() as tx:
            await AuditRepository(tx.session).add(entry)

    async def search(self, limit: int, cursor: str | None, query: AuditQuery) -> AuditPage:
        if cursor is not None:
            position = decode_cursor(cursor, frozenset({"id"}))
            if not isinstance(position["id"], int) or position["id"] < 1:
                raise InvalidCursorError
            query = replace(query, before_id=position["id"])
        async with self._uow.begin() as tx:
            rows = await AuditRepository(tx.session).newest_first(limit + 1, query)
        items = rows[:limit]
        next_cursor = encode_cursor({"id": items[-1].id}) if len(rows) > limit else None
        return AuditPage(items=items, next_cursor=next_cursor)


class Sessions:
    """Opens and revokes sessions inside a caller's transaction; `forget` runs after commit."""

    def __init__(
        self, tokens: TokenIssuer, revocations: TokenRevocations, refresh_ttl_s: int
    ) -> None:
        self._tokens = tokens
        self._revocations = revocations
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)

    async def open(
        self, tx: Transaction, user: User, family_id: UUID | None = None
    ) -> IssuedTokens:
        secret = new_secret_token()
        family_id = family_id or uuid4()
        await RefreshTokenRepository(tx.session).add(
            RefreshToken(
                token_digest=token_digest(secret),
                family_id=family_id,
                user_id=user.id,
                expires_at=_now() + self._refresh_ttl,
            )
        )
        access = self._tokens.issue_access_token(user.id, _roles(user), family_id)
        return IssuedTokens(access, secret, int(self._tokens.ttl.total_seconds()))

    async def revoke_all(
        self, tx: Transaction, user_id: UUID, keep: UUID | None = None
    ) -> set[UUID]:
        return await RefreshTokenRepository(tx.session).revoke_user_families(user_id, _now(), keep)

    async def forget(self, session_ids: Iterable[UUID]) -> None:
        """After commit: the revoked sessions' access tokens stop working now."""
        ids = list(session_ids)
        if ids:
            await self._revocations.revoke_sessions(ids)

    async def forget_token(self, token: AccessToken) -> None:
        await self._revocations.revoke_token(token)


class UsersPersonalData:
    """The users module's part of a data export: the account, its sessions, its audit trail."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def export(self, user_id: UUID) -> dict[str, Any]:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
            sessions = await RefreshTokenRepository(tx.session).of_user(user_id)
            actions = await AuditRepository(tx.session).by_actor(user_id)
        if user is None:
            return {}
        return {
            "account": {
                "id": str(user.id),
                "email": user.email,
                "full_name": user.full_name,
                "roles": list(user.roles),
                "status": "active" if user.is_active else "disabled",
                "created_at": user.created_at.isoformat(),
                "email_verified_at": _isoformat(user.email_verified_at),
            },
            "refresh_tokens": [
                {
                    "session_id": str(token.family_id),
                    "created_at": token.created_at.isoformat(),
                    "expires_at": token.expires_at.isoformat(),
                    "state": _token_state(token),
                }
                for token in sessions
            ],
            "audit_log": [
                {
                    "occurred_at": row.occurred_at.isoformat(),
                    "action": row.action,
                    "outcome": row.outcome,
                    "ip": row.ip,
                }
                for row in actions
            ],
        }


def _isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _token_state(token: RefreshToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.used_at is not None:
        return "rotated"
    return "expired" if token.expires_at <= _now() else "active"


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
            email_verified_at=_now() if email_verified else None,
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
            "users.password_change", Outcome.SUCCESS, user.id, _user(user.id), origin
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
        await self._sessions.forget(revoked)

    async def export(self, user_id: UUID) -> dict[str, dict[str, Any]]:
        """Everything Keystone holds about the person, each module contributing its part."""
        await self.profile(user_id)
        return await self._personal_data.export(user_id)

    async def erase(self, token: AccessToken, password: str, origin: Origin = NO_ORIGIN) -> None:
        """The right to erasure: the account is anonymised and disabled, its sessions and reset
        tokens end, and `UserErased` tells every other module to forget the person."""
        user = await self.get(token.principal.user_id)
        entry = AuditEntry("users.erase", Outcome.SUCCESS, user.id, _user(user.id), origin)
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
        await self._sessions.forget(revoked)


class AuthService:
    def __init__(
        self, uow: UnitOfWork, passwords: PasswordHasher, sessions: Sessions, audit: AuditLog
    ) -> None:
        self._uow = uow
        self._passwords = passwords
        self._sessions = sessions
        self._audit = audit

    async def log_in(self, email: str, password: str, origin: Origin = NO_ORIGIN) -> IssuedTokens:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).by_email(email)
        stored = user.password_hash if user is not None and user.is_active else None
        ok, rehashed = await self._passwords.verify(password, stored)
        if not ok or user is None:
            # A known account is named by id, so erasing it leaves no email in the log.
            target = _user(user.id) if user is not None else f"email:{email}"
            await self._audit.record(
                AuditEntry("auth.login", Outcome.FAILURE, target=target, origin=origin)
            )
            raise InvalidCredentialsError
        async with self._uow.begin() as tx:
            current = await UserRepository(tx.session).get_for_update(user.id)
            if current is None or not current.is_active:
                raise InvalidCredentialsError
            if rehashed is not None and current.password_hash == user.password_hash:
                current.password_hash = rehashed
            await AuditRepository(tx.session).add(
                AuditEntry("auth.login", Outcome.SUCCESS, user.id, _user(user.id), origin)
            )
            return await self._sessions.open(tx, current)

    async def refresh(self, presented: str, origin: Origin = NO_ORIGIN) -> IssuedTokens:
        issued: IssuedTokens | None = None
        reused: RefreshToken | None = None
        async with self._uow.begin() as tx:
            tokens = RefreshTokenRepository(tx.session)
            token = await tokens.by_digest_for_update(token_digest(presented))
            if token is None or token.revoked_at is not None or token.expires_at <= _now():
                raise InvalidRefreshTokenError
            # A revocation racing a refresh misses the row the refresh adds, never the row it
            # used: one revoked row revokes the family.
            if await tokens.family_revoked(token.family_id):
                raise InvalidRefreshTokenError
            if token.used_at is not None:
                # Committed before answering: the revocation must stick although we refuse.
                await tokens.revoke_family(token.family_id, _now())
                await AuditRepository(tx.session).add(
                    AuditEntry(
                        "auth.refresh_token_reuse",
                        Outcome.FAILURE,
                        target=_user(token.user_id),
                        origin=origin,
                        detail={"session_id": str(token.family_id)},
                    )
                )
                reused = token
            else:
                user = await UserRepository(tx.session).get(token.user_id)
                if user is None or not user.is_active:
                    raise InvalidRefreshTokenError
                token.used_at = _now()
                issued = await self._sessions.open(tx, user, token.family_id)
        if reused is not None:
            _log.warning("refresh token reused; session revoked", user_id=str(reused.user_id))
            await self._sessions.forget([reused.family_id])
            raise InvalidRefreshTokenError
        assert issued is not None
        return issued

    async def log_out(self, token: AccessToken, origin: Origin = NO_ORIGIN) -> None:
        user_id = token.principal.user_id
        async with self._uow.begin() as tx:
            await RefreshTokenRepository(tx.session).revoke_family(token.session_id, _now())
            await AuditRepository(tx.session).add(
                AuditEntry("auth.logout", Outcome.SUCCESS, user_id, _user(user_id), origin)
            )
        await self._sessions.forget([token.session_id])
        await self._sessions.forget_token(token)


class AdminService:
    """What holders of `users:manage` do: list accounts, set roles, disable accounts."""

    def __init__(self, uow: UnitOfWork, sessions: Sessions, audit: AuditLog) -> None:
        self._uow = uow
        self._sessions = sessions
        self._audit = audit

    async def list_users(
        self, limit: int, cursor: str | None, email_contains: str | None, role: Role | None
    ) -> UserPage:
        after = _parse_cursor(cursor) if cursor is not None else None
        async with self._uow.begin() as tx:
            rows = await UserRepository(tx.session).newest_first(
                limit + 1, after, email_contains, role
            )
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                {"created_at": last.created_at.isoformat(), "id": str(last.id)}
            )
        return UserPage(items=items, next_cursor=next_cursor)

    async def set_roles(
        self, actor: Principal, user_id: UUID, roles: frozenset[Role], origin: Origin = NO_ORIGIN
    ) -> User:
        """New roles take effect at the next login: the account's sessions are revoked, so no
        token keeps carrying the old roles."""
        entry = AuditEntry(
            "users.roles_change",
            Outcome.SUCCESS,
            actor.user_id,
            _user(user_id),
            origin,
            {"roles": sorted(roles)},
        )
        async with self._audited_failure(entry), self._uow.begin() as tx:
            user = await lock_account(tx, user_id, losing_admin=Role.ADMIN not in roles)
            previous, user.roles = list(user.roles), sorted(roles)
            revoked = await self._sessions.revoke_all(tx, user.id)
            detail = {**entry.detail, "previous": previous}
            await AuditRepository(tx.session).add(replace(entry, detail=detail))
        await self._sessions.forget(revoked)
        return user

    async def disable(self, actor: Principal, user_id: UUID, origin: Origin = NO_ORIGIN) -> User:
        entry = AuditEntry("users.disable", Outcome.SUCCESS, actor.user_id, _user(user_id), origin)
        async with self._audited_failure(entry), self._uow.begin() as tx:
            user = await lock_account(tx, user_id, losing_admin=True)
            user.is_active = False
            revoked = await self._sessions.revoke_all(tx, user.id)
            await AuditRepository(tx.session).add(entry)
        await self._sessions.forget(revoked)
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
                    expires_at=_now() + self._ttl,
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
                await PasswordResetRepository(tx.session).use_all(user.id, _now())
                revoked = await self._sessions.revoke_all(tx, user.id)
                await AuditRepository(tx.session).add(
                    AuditEntry(
                        "users.password_reset", Outcome.SUCCESS, user.id, _user(user.id), origin
                    )
                )
        except InvalidResetTokenError:
            await self._audit.record(
                AuditEntry("users.password_reset", Outcome.FAILURE, origin=origin)
            )
            raise
        await self._sessions.forget(revoked)

    async def _user_of_valid_token(self, tx: Transaction, digest: str) -> User:
        token = await PasswordResetRepository(tx.session).by_digest_for_update(digest)
        if token is None or token.used_at is not None or token.expires_at <= _now():
            raise InvalidResetTokenError
        user = await UserRepository(tx.session).get_for_update(token.user_id)
        if user is None or not user.is_active:
            raise InvalidResetTokenError
        return user


class RetentionService:
    """Deletes what Keystone no longer needs: expired refresh and reset tokens, and audit rows
    older than AUDIT_RETENTION_DAYS. Run hourly by the worker; logs what it removed."""

    def __init__(self, uow: UnitOfWork, audit_retention_days: int) -> None:
        self._uow = uow
        self._audit_retention = timedelta(days=audit_retention_days)

    async def apply(self) -> dict[str, int]:
        now = _now()
        async with self._uow.begin() as tx:
            retention = RetentionRepository(tx.session)
            removed = await retention.delete_expired_tokens(now)
            removed["audit_rows"] = await retention.delete_audit_before(now - self._audit_retention)
        _log.info("retention applied", **removed)
        return removed


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


def _parse_cursor(cursor: str) -> tuple[datetime, UUID]:
    position = decode_cursor(cursor, _CURSOR_KEYS)
    try:
        created_at = datetime.fromisoformat(position["created_at"])
        if created_at.tzinfo is None:
            raise InvalidCursorError
        return created_at.astimezone(UTC), UUID(position["id"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidCursorError from exc
