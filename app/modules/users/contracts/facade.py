from __future__ import annotations

from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Contact(BaseModel):
    """Where to write to a person, for a module that emails them about its own business."""

    model_config = ConfigDict(frozen=True)

    user_id: UUID
    email: str
    full_name: str


class UsersFacade(Protocol):
    """The synchronous calls other modules may make into users. In-process it is the users
    module's own service; split into services, an HTTP client implements the same Protocol."""

    async def contact(self, user_id: UUID) -> Contact | None:
        """The person's contact, or None when there is nobody to write to: no such account,
        or one that was disabled or erased."""
        ...

    async def email_verified(self, user_id: UUID) -> bool:
        """Whether the person proved their email address is theirs; False for no such
        account, or a disabled or erased one. Read at each call, so it is never stale."""
        ...
