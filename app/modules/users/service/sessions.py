"""Sessions: families of refresh tokens, opened at login and revoked on every change that
must end them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from app.core.events.outbox import Transaction
from app.core.security.rbac import Role
from app.core.security.revocation import TokenRevocations
from app.core.security.tokens import AccessToken, TokenIssuer
from app.modules.users.models import RefreshToken, User
from app.modules.users.repository import RefreshTokenRepository
from app.modules.users.service.shared import new_secret_token, now_utc, token_digest


def _roles(user: User) -> frozenset[Role]:
    return frozenset(Role(role) for role in user.roles)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


class Sessions:
    """Opens and revokes sessions inside a caller's transaction; `revoke_access_tokens` runs after
    commit."""

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
                expires_at=now_utc() + self._refresh_ttl,
            )
        )
        access = self._tokens.issue_access_token(user.id, _roles(user), family_id)
        return IssuedTokens(access, secret, int(self._tokens.ttl.total_seconds()))

    async def revoke_all(
        self, tx: Transaction, user_id: UUID, keep: UUID | None = None
    ) -> set[UUID]:
        return await RefreshTokenRepository(tx.session).revoke_user_families(
            user_id, now_utc(), keep
        )

    async def revoke_access_tokens(self, session_ids: Iterable[UUID]) -> None:
        """After commit: the revoked sessions' access tokens stop working now."""
        ids = list(session_ids)
        if ids:
            await self._revocations.revoke_sessions(ids)

    async def revoke_access_token(self, token: AccessToken) -> None:
        await self._revocations.revoke_token(token)
