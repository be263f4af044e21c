"""The integration event: what one module tells the others, versioned and self-identifying."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from app.core.context import current_correlation_id

_registry: dict[tuple[str, int], type[IntegrationEvent]] = {}


def utcnow() -> datetime:
    return datetime.now(UTC)


class IntegrationEvent(BaseModel):
    """Subclasses set `event_type` (e.g. "orders.OrderPlaced") and bump `event_version` on any
    change a consumer could notice; old versions stay registered while consumers still read them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1
    # The field naming the aggregate whose events a consumer must see in the order they were
    # raised (e.g. "order_id": an order's status changes); None: any order will do.
    ordered_by: ClassVar[str | None] = None

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = Field(default_factory=current_correlation_id)

    def ordering_key(self) -> str | None:
        """Events with the same key are delivered one after the other, in the order raised."""
        if self.ordered_by is None:
            return None
        return f"{self.ordered_by}:{getattr(self, self.ordered_by)}"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        key = (cls.event_type, cls.event_version)
        if key in _registry and _registry[key] is not cls:
            raise TypeError(f"event {key} is declared twice: {_registry[key]} and {cls}")
        _registry[key] = cls


def event_class(event_type: str, version: int) -> type[IntegrationEvent] | None:
    return _registry.get((event_type, version))
