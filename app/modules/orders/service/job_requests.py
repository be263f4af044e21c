"""The jobs orders asks for after commit: their names, and the calls that ask for them."""

from __future__ import annotations

from uuid import UUID

from app.core.events.outbox import Transaction

EXPIRE_ORDER_JOB = "orders.expire_order"
TAKE_PAYMENT_JOB = "orders.take_payment"
REFUND_PAYMENT_JOB = "orders.refund_payment"
SEND_ORDER_EMAIL_JOB = "orders.send_order_email"
# The most orders one run of a re-driving sweep looks at.
SWEEP_BATCH = 500


def enqueue_take_payment(tx: Transaction, order_id: UUID) -> None:
    tx.enqueue_after_commit(TAKE_PAYMENT_JOB, str(order_id), job_id=f"take-payment:{order_id}")


def enqueue_refund(tx: Transaction, order_id: UUID) -> None:
    tx.enqueue_after_commit(REFUND_PAYMENT_JOB, str(order_id), job_id=f"refund:{order_id}")


def enqueue_order_email(tx: Transaction, order_id: UUID, status: str) -> None:
    tx.enqueue_after_commit(
        SEND_ORDER_EMAIL_JOB, str(order_id), str(status), job_id=f"order-email:{order_id}:{status}"
    )
