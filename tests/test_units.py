"""Pure business rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from unittest.mock import AsyncMock, MagicMock
from uuid import uuid4

import pytest

from app.core.events.outbox import Transaction
from app.core.pagination import (
    InvalidCursorError,
    decode_cursor,
    decode_newest_first_cursor,
    encode_cursor,
    newest_first_position,
)
from app.core.security.rbac import Permission, Principal, Role
from app.modules.orders.contracts import OrderStatusChanged
from app.modules.orders.exceptions import IllegalTransitionError
from app.modules.orders.models import Order, OrderStatus
from app.modules.orders.service import (
    EMAILED_STATUSES,
    SEND_ORDER_EMAIL_JOB,
    TRANSITIONS,
    change_status,
)
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


def test_a_newest_first_cursor_reads_back_its_position() -> None:
    moment, row_id = datetime(2026, 1, 1, 12, tzinfo=UTC), uuid4()
    cursor = encode_cursor(newest_first_position("placed_at", moment, row_id))
    assert decode_newest_first_cursor(cursor, "placed_at") == (moment, row_id)


@pytest.mark.parametrize(
    "placed_at", ["2026-01-01T00:00:00", "yesterday", 5], ids=["no-offset", "text", "number"]
)
def test_a_newest_first_cursor_without_an_instant_is_refused(placed_at: object) -> None:
    cursor = encode_cursor({"placed_at": placed_at, "id": str(uuid4())})
    with pytest.raises(InvalidCursorError):
        decode_newest_first_cursor(cursor, "placed_at")


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


# Besides `OrderStatusChanged`, each status reached is announced by its own event, if any.
STATUS_REACHED_EVENTS: dict[OrderStatus, list[str]] = {
    OrderStatus.PENDING: [],
    OrderStatus.STOCK_RESERVED: [],
    OrderStatus.PAID: ["orders.OrderPaid"],
    OrderStatus.CONFIRMED: ["orders.OrderConfirmed"],
    OrderStatus.SHIPPED: ["orders.OrderShipped"],
    OrderStatus.REJECTED: ["orders.OrderRejected"],
    OrderStatus.PAYMENT_FAILED: ["orders.OrderPaymentFailed"],
    OrderStatus.CANCELLED: ["orders.OrderCancelled"],
    OrderStatus.REFUNDED: ["orders.OrderRefunded"],
}


async def test_every_order_transition_outside_the_table_is_refused_naming_the_state() -> None:
    for current in OrderStatus:
        for target in OrderStatus:
            order = Order(id=uuid4(), customer_id=uuid4(), status=current, history=[])
            tx = Transaction(MagicMock(execute=AsyncMock()))
            if target in TRANSITIONS[current]:
                await change_status(tx, order, target, "because")
                assert order.status == target
                assert [(c.status, c.cause) for c in order.history] == [(target, "because")]
                changed, *reached = tx.events
                assert isinstance(changed, OrderStatusChanged)
                assert (changed.status, changed.version) == (target, 1)
                assert [(e.event_type, e.order_id) for e in reached] == [  # type: ignore[attr-defined]
                    (event_type, order.id) for event_type in STATUS_REACHED_EVENTS[target]
                ]
                emailed = [(SEND_ORDER_EMAIL_JOB, (str(order.id), target))]
                expected_jobs = emailed if target in EMAILED_STATUSES else []
                assert [(job.name, job.args) for job in tx.jobs] == expected_jobs
            else:
                with pytest.raises(IllegalTransitionError, match=f"The order is '{current}'"):
                    await change_status(tx, order, target, "because")
                assert (order.status, order.history, tx.events) == (current, [], [])


def test_the_order_lifecycle_reaches_every_status_from_pending() -> None:
    reached, frontier = {OrderStatus.PENDING}, [OrderStatus.PENDING]
    while frontier:
        for target in TRANSITIONS[frontier.pop()] - reached:
            reached.add(target)
            frontier.append(target)
    assert reached == set(OrderStatus)
