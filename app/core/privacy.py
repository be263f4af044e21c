"""The personal-data port: every module that holds data about a person can export its part.

A module brings a `PersonalDataSource` in its `Module`; the composition root registers them
here, and the users module's export (`GET /users/me/export`) asks each one. Erasure goes the
other way, by event: users publishes `UserErased` and every module holding personal data
subscribes to it.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class PersonalDataSource(Protocol):
    async def export(self, user_id: UUID) -> dict[str, Any]:
        """Everything this module holds about the person, as JSON-ready values."""
        ...


class PersonalDataRegistry:
    def __init__(self) -> None:
        self._sources: dict[str, PersonalDataSource] = {}

    def register(self, module: str, source: PersonalDataSource) -> None:
        self._sources[module] = source

    async def export(self, user_id: UUID) -> dict[str, dict[str, Any]]:
        return {name: await source.export(user_id) for name, source in self._sources.items()}
