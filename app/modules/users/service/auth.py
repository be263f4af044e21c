"""Logging in, refreshing a session's tokens, logging out."""

from __future__ import annotations

from app.core.audit import NO_ORIGIN, AuditEntry, Origin, Outcome
from app.core.events.outbox import UnitOfWork
from app.core.logging import get_logger
from app.core.security.passwords import PasswordHasher
from app.core.security.tokens import AccessToken
from app.modules.users.exceptions import InvalidCredentialsError, InvalidRefreshTokenError
from app.modules.users.models import RefreshToken
from app.modules.users.repository import AuditRepository, RefreshTokenRepository, UserRepository
from app.modules.users.service.audit import AuditLog
from app.modules.users.service.sessions import IssuedTokens, Sessions
from app.modules.users.service.shared import now_utc, token_digest, user_target

_log = get_logger("keystone.users")


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
            target = user_target(user.id) if user is not None else f"email:{email}"
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
                AuditEntry("auth.login", Outcome.SUCCESS, user.id, user_target(user.id), origin)
            )
            return await self._sessions.open(tx, current)

    async def refresh(self, presented: str, origin: Origin = NO_ORIGIN) -> IssuedTokens:
        issued: IssuedTokens | None = None
        reused: RefreshToken | None = None
        async with self._uow.begin() as tx:
            tokens = RefreshTokenRepository(tx.session)
            token = await tokens.by_digest_for_update(token_digest(presented))
            if token is None or token.revoked_at is not None or token.expires_at <= now_utc():
                raise InvalidRefreshTokenError
            # A revocation racing a refresh misses the row the refresh adds, never the row it
            # used: one revoked row revokes the family.
            if await tokens.family_revoked(token.family_id):
                raise InvalidRefreshTokenError
            if token.used_at is not None:
                # Committed before answering: the revocation must stick although we refuse.
                await tokens.revoke_family(token.family_id, now_utc())
                await AuditRepository(tx.session).add(
                    AuditEntry(
                        "auth.refresh_token_reuse",
                        Outcome.FAILURE,
                        target=user_target(token.user_id),
                        origin=origin,
                        detail={"session_id": str(token.family_id)},
                    )
                )
                reused = token
            else:
                user = await UserRepository(tx.session).get(token.user_id)
                if user is None or not user.is_active:
                    raise InvalidRefreshTokenError
                token.used_at = now_utc()
                issued = await self._sessions.open(tx, user, token.family_id)
        if reused is not None:
            _log.warning("refresh token reused; session revoked", user_id=str(reused.user_id))
            await self._sessions.revoke_access_tokens([reused.family_id])
            raise InvalidRefreshTokenError
        assert issued is not None
        return issued

    async def log_out(self, token: AccessToken, origin: Origin = NO_ORIGIN) -> None:
        user_id = token.principal.user_id
        async with self._uow.begin() as tx:
            await RefreshTokenRepository(tx.session).revoke_family(token.session_id, now_utc())
            await AuditRepository(tx.session).add(
                AuditEntry("auth.logout", Outcome.SUCCESS, user_id, user_target(user_id), origin)
            )
        await self._sessions.revoke_access_tokens([token.session_id])
        await self._sessions.revoke_access_token(token)
