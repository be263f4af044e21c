"""Emails to the customer about their order: confirmed, payment failed, refunded.

`change_status` owes one (`record_email_owed_and_enqueue_job`: an `order_emails` row) in the
transaction that reaches the status, and asks for the job after commit. The job reads that row
first and does nothing once it is settled, so a job run twice, or sent again by the redrive,
mails once; only a crash between the server accepting the message and the row being settled
can repeat it. The address comes from the users module's contract at sending time: an erased or
disabled customer gets nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from app.core.events.outbox import UnitOfWork
from app.core.jobs import RetryLater
from app.core.logging import get_logger
from app.core.mail import Email, Mailer, MailRefusedError, MailUnavailableError
from app.modules.orders.models import EmailOutcome, Order, OrderStatus
from app.modules.orders.repository import OrderEmailRepository, OrderRepository
from app.modules.orders.service import SWEEP_BATCH, enqueue_order_email
from app.modules.users.contracts import Contact, UsersFacade

_log = get_logger("keystone.orders")

# Short enough to stay on one header line (78 characters), which some mail clients need.
_SUBJECTS = {
    OrderStatus.CONFIRMED: "Order {id} is confirmed",
    OrderStatus.PAYMENT_FAILED: "Order {id}: payment failed",
    OrderStatus.REFUNDED: "Order {id} is refunded",
}
_NEWS = {
    OrderStatus.CONFIRMED: "thank you for your order {id}: the payment went through and the "
    "order is confirmed.",
    OrderStatus.PAYMENT_FAILED: "the payment for your order {id} did not go through, so it "
    "will not be shipped. Anything held or taken for it is given back.",
    OrderStatus.REFUNDED: "we have refunded your order {id}: {total} goes back to the payment "
    "method you used.",
}


class OrderEmails:
    def __init__(
        self, uow: UnitOfWork, users: UsersFacade, mailer: Mailer, redrive_after_s: int
    ) -> None:
        self._uow = uow
        self._users = users
        self._mailer = mailer
        self._redrive_after = timedelta(seconds=redrive_after_s)

    async def send(self, order_id: UUID, status: str) -> str:
        """The job: mail the email owed for `status`, unless it is settled already."""
        async with self._uow.begin() as tx:
            owed = await OrderEmailRepository(tx.session).get(order_id, status)
            order = await OrderRepository(tx.session).get(order_id)
        if owed is None or order is None:
            return "no such email"
        if owed.settled_at is not None:
            return f"settled before: {owed.outcome}"
        log = _log.bind(order_id=str(order_id), email=status)
        contact = await self._users.contact(order.customer_id)
        if contact is None:
            log.warning("order email not sent: the customer is erased or disabled")
            return await self._settle(order_id, status, EmailOutcome.NO_RECIPIENT)
        try:
            await self._mailer.send(compose(order, OrderStatus(status), contact))
        except MailUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        except MailRefusedError as refused:
            log.error("order email refused by the mail server", reason=str(refused))
            return await self._settle(order_id, status, EmailOutcome.REFUSED)
        log.info("order email sent")
        return await self._settle(order_id, status, EmailOutcome.SENT)

    async def gave_up(self, order_id: UUID, status: str) -> str:
        _log.error(
            "order email not sent: mail server unavailable; the redrive will retry",
            order_id=str(order_id),
            email=status,
        )
        return "email pending"

    async def redrive(self, now: datetime | None = None) -> int:
        """Send again the emails still owed a while after they were asked for: their job was
        lost with Redis, killed with its worker, or gave up while the mail server was down.
        Jobs are deduplicated by id, so a live one is not doubled."""
        cutoff = (now or datetime.now(UTC)) - self._redrive_after
        async with self._uow.begin() as tx:
            owed = await OrderEmailRepository(tx.session).unsettled_since_before(
                cutoff, SWEEP_BATCH
            )
            for order_id, status in owed:
                enqueue_order_email(tx, order_id, status)
        return len(owed)

    async def _settle(self, order_id: UUID, status: str, outcome: EmailOutcome) -> str:
        async with self._uow.begin() as tx:
            await OrderEmailRepository(tx.session).settle(order_id, status, outcome)
        return outcome


def compose(order: Order, status: OrderStatus, contact: Contact) -> Email:
    def money(amount: Decimal) -> str:
        return f"{amount} {order.currency}"

    lines = [
        f"  {line.quantity} x {line.name} ({line.sku}) at {money(line.unit_price)}"
        f" = {money(line.unit_price * line.quantity)}"
        for line in order.lines
    ]
    news = _NEWS[status].format(id=order.id, total=money(order.total))
    parts = [f"Hello {contact.full_name},", news, "\n".join(lines), f"Total: {money(order.total)}"]
    if status == OrderStatus.CONFIRMED:
        parts.append("It ships to:\n" + "\n".join(_address_lines(order)))
    subject = _SUBJECTS[status].format(id=order.id)
    return Email(to=contact.email, subject=subject, body="\n\n".join(parts) + "\n")


def _address_lines(order: Order) -> list[str]:
    address = order.shipping_address
    town = " ".join(filter(None, (address.get("postal_code"), address.get("city"))))
    parts = (address.get("name"), address.get("line1"), address.get("line2"), town)
    return [part for part in (*parts, address.get("country")) if part]
