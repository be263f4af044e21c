"""The users module's part of a person's data export."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from app.core.events.outbox import UnitOfWork
from app.modules.users.models import RefreshToken
from app.modules.users.repository import AuditRepository, RefreshTokenRepository, UserRepository
from app.modules.users.service.shared import now_utc


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
    return "expired" if token.expires_at <= now_utc() else "active"
