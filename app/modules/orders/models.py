from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.core.db import module_metadata
from app.core.events.outbox import inbox_table, outbox_table

SCHEMA = "orders"


class Base(DeclarativeBase):
    metadata = module_metadata(SCHEMA)


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)


class OrderStatus(StrEnum):
    PENDING = "pending"
    STOCK_RESERVED = "stock_reserved"
    PAID = "paid"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    REJECTED = "rejected"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_newest", "customer_id", "created_at"),
        Index("ix_orders_pending", "created_at", postgresql_where="status = 'pending'"),
        Index(
            "ix_orders_awaiting_payment",
            "created_at",
            postgresql_where="status = 'stock_reserved'",
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    customer_id: Mapped[UUID]  # a users id, by value: no foreign key across schemas
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    payment_method: Mapped[str] = mapped_column(String(100), server_default="")
    # The provider's id of the authorisation, once there is one: capture and refund name it.
    payment_id: Mapped[str | None] = mapped_column(String(200))
    # Set before the first authorisation request leaves: from then on the provider may hold
    # money for this order even if no answer ever came back, so compensation must look.
    authorisation_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def may_hold_money(self) -> bool:
        return self.payment_id is not None or self.authorisation_requested_at is not None

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    lines: Mapped[list[OrderLine]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="OrderLine.position"
    )
    history: Mapped[list[StatusChange]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="StatusChange.id"
    )


class OrderLine(Base):
    """A product as it was when ordered: the price is a snapshot, not a reference."""

    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("orders.orders.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[UUID]  # a catalog id, by value
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    quantity: Mapped[int] = mapped_column(Integer)


class StatusChange(Base):
    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("orders.orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailOutcome(StrEnum):
    SENT = "sent"
    NO_RECIPIENT = "no_recipient"  # the customer was erased or disabled meanwhile
    REFUSED = "refused"  # the mail server refused the message for good


class OrderEmail(Base):
    """An email the customer is owed about a status their order reached: written in the
    transaction of the status change, settled by the job once sent (or known unsendable). The
    job does nothing for a settled row, and the redrive re-sends unsettled ones."""

    __tablename__ = "order_emails"
    __table_args__ = (
        Index("ix_order_emails_unsettled", "requested_at", postgresql_where="settled_at IS NULL"),
    )

    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("orders.orders.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(20))


class IdempotencyKey(Base):
    """A checkout request already seen: its body's hash and the order it created. The primary
    key makes a concurrent duplicate wait for the first request's transaction, then see it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    customer_id: Mapped[UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderSummary(Base):
    """One row per order for the order lists, written in the transaction of each of the
    order's own writes (`OrderSummaryRepository.save`), read without touching the write tables."""

    __tablename__ = "order_summaries"
    __table_args__ = (
        Index("ix_order_summaries_customer_newest", "customer_id", "placed_at", "order_id"),
        Index("ix_order_summaries_newest", "placed_at", "order_id"),
        Index("ix_order_summaries_status_newest", "status", "placed_at", "order_id"),
    )

    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


metadata = Base.metadata
