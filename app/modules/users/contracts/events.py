from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from app.core.events.base import IntegrationEvent


class UserRegistered(IntegrationEvent):
    event_type: ClassVar[str] = "users.UserRegistered"

    user_id: UUID
    email: str
