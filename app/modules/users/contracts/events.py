from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from app.core.events.base import IntegrationEvent


class UserRegistered(IntegrationEvent):
    event_type: ClassVar[str] = "users.UserRegistered"

    user_id: UUID
    email: str


class UserErased(IntegrationEvent):
    """The person asked to be forgotten: every module blanks or deletes the personal data it
    holds about `user_id` (keeping what the law requires, such as order amounts)."""

    event_type: ClassVar[str] = "users.UserErased"

    user_id: UUID
