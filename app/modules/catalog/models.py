from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.db import module_metadata
from app.core.events.outbox import inbox_table, outbox_table

SCHEMA = "catalog"
SEARCH_CONFIG = "english"
SEARCH_DOCUMENT = (
    f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, name), 'A') || "
    f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, sku), 'A') || "
    f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, description), 'B')"
)


class Base(DeclarativeBase):
    metadata = module_metadata(SCHEMA)


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)


class Category(Base):
    """A tree of one level: a category with a parent is never a parent itself (the service
    keeps it so)."""

    __tablename__ = "categories"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    parent_id: Mapped[UUID | None] = mapped_column(ForeignKey("catalog.categories.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price > 0", name="price_positive"),
        Index("ix_products_newest", "created_at", "id"),
        Index("ix_products_by_price", "price", "id"),
        Index("ix_products_by_name", "name", "id"),
        Index("ix_products_category_id", "category_id"),
        Index("ix_products_search", "search", postgresql_using="gin"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[UUID | None] = mapped_column(ForeignKey("catalog.categories.id"))
    # Archived products vanish from public reads but stay, so orders and reservations that
    # name them still resolve.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(SEARCH_DOCUMENT, persisted=True),
        deferred=True,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Reservation(Base):
    """Stock held for one order: `reserved`, then `committed` (sold), `released` (given back)
    or `expired` (given back by the expiry cron, nobody having settled the order); `rejected`
    when there was not enough. `released` without lines is a tombstone: the order was
    cancelled before its reservation arrived, so a late `OrderPlaced` must not take stock."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_open", "created_at", postgresql_where="status = 'reserved'"),
    )

    order_id: Mapped[UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ReservationLine(Base):
    __tablename__ = "reservation_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[UUID] = mapped_column(
        ForeignKey("catalog.reservations.order_id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[UUID] = mapped_column(ForeignKey("catalog.products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


metadata = Base.metadata
