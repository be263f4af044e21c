"""Pure business rules, without I/O."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from app.core.errors import ConflictError
from app.core.pagination import InvalidCursorError, decode_cursor, encode_cursor
from app.core.security.rbac import Permission, Principal, Role
from app.modules.orders.models import Order, OrderStatus
from app.modules.orders.service import TRANSITIONS, move
from app.modules.users.schemas import normalise_email


def new_order(status: OrderStatus) -> Order:
    return Order(
        id=uuid4(),
        customer_id=uuid4(),
        status=status,
        total=Decimal(1),
        currency="EUR",
        lines=[],
        history=[],
    )


@pytest.mark.parametrize(
    "target", [OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED]
)
def test_a_pending_order_can_be_settled(target: OrderStatus) -> None:
    order = new_order(OrderStatus.PENDING)
    move(order, target, "because")
    assert order.status == target
    assert [(c.status, c.cause) for c in order.history] == [(target, "because")]


@pytest.mark.parametrize(
    "current", [OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED]
)
def test_a_settled_order_cannot_change(current: OrderStatus) -> None:
    order = new_order(current)
    with pytest.raises(ConflictError, match=f"is '{current}' and cannot become 'pending'"):
        move(order, OrderStatus.PENDING, "again")
    assert order.status == current
    assert order.history == []


def test_every_status_is_in_the_state_machine() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)


def test_roles_grant_permissions() -> None:
    customer = Principal(uuid4(), frozenset({Role.CUSTOMER}))
    staff = Principal(uuid4(), frozenset({Role.STAFF}))
    admin = Principal(uuid4(), frozenset({Role.ADMIN}))
    assert customer.can(Permission.ORDERS_PLACE)
    assert not customer.can(Permission.CATALOG_WRITE)
    assert staff.can(Permission.CATALOG_WRITE)
    assert staff.can(Permission.ORDERS_READ_ANY)
    assert not staff.can(Permission.USERS_MANAGE)
    assert admin.permissions == frozenset(Permission)
    assert Principal(uuid4(), frozenset()).permissions == frozenset()


def test_cursor_round_trip() -> None:
    position = {"created_at": "2026-01-01T00:00:00+00:00", "id": str(uuid4())}
    assert decode_cursor(encode_cursor(position), frozenset(position)) == position


@pytest.mark.parametrize("cursor", ["", "%%%", encode_cursor({"other": 1}), "W10"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, frozenset({"created_at", "id"}))


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(" Ada@Example.COM ", "Ada@example.com"), ("x@y.io", "x@y.io"), ("a@b@C.org", "a@b@c.org")],
)
def test_email_normalisation(raw: str, normalised: str) -> None:
    assert normalise_email(raw) == normalised
