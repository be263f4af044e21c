"""Background work of orders: taking and refunding payments, emailing the customer, expiring
orders nobody answered for, re-sending lost payment and email jobs, purging expired idempotency
keys."""

from __future__ import annotations

from uuid import UUID

from app.core.jobs import CronJob, Job, JobFunction
from app.modules.orders.emails import OrderEmails
from app.modules.orders.service import (
    EXPIRE_ORDER_JOB,
    REFUND_PAYMENT_JOB,
    SEND_ORDER_EMAIL_JOB,
    TAKE_PAYMENT_JOB,
    OrderService,
    PaymentSaga,
)
from app.modules.orders.settings import OrdersSettings

# Short timeouts all round: arq reruns a job whose worker was killed mid-way only once its
# in-progress key expires, after the longest timeout of any job or cron + 10 s. A rerun is safe
# (state checks, the provider's idempotency keys); a long wait for it is not.
PAYMENT_JOB_TIMEOUT_S = 30
CRON_TIMEOUT_S = 30
# Room for an SMTP exchange whose every step may take SMTP_TIMEOUT_S; as long as users' email job.
EMAIL_JOB_TIMEOUT_S = 60


def jobs(
    orders: OrderService, saga: PaymentSaga, emails: OrderEmails, settings: OrdersSettings
) -> list[Job]:
    async def expire_order(order_id: str) -> bool:
        return await orders.expire_if_unanswered(UUID(order_id))

    async def take_payment(order_id: str) -> str:
        return await saga.take_payment(UUID(order_id))

    async def give_up_payment(order_id: str) -> str:
        return await saga.give_up_payment(UUID(order_id))

    async def refund(order_id: str) -> str:
        return await saga.refund(UUID(order_id))

    async def refund_gave_up(order_id: str) -> str:
        return await saga.refund_gave_up(UUID(order_id))

    async def send_email(order_id: str, status: str) -> str:
        return await emails.send(UUID(order_id), status)

    async def email_gave_up(order_id: str, status: str) -> str:
        return await emails.gave_up(UUID(order_id), status)

    def payment_job(name: str, run: JobFunction, on_exhausted: JobFunction) -> Job:
        return Job(
            name=name,
            run=run,
            timeout_s=PAYMENT_JOB_TIMEOUT_S,
            max_tries=settings.payment_job_max_tries,
            retry_base_s=settings.payment_job_retry_base_s,
            on_exhausted=on_exhausted,
            keep_result_s=0,  # so the redrive sweep can send it again once it has given up
        )

    return [
        Job(name=EXPIRE_ORDER_JOB, run=expire_order, timeout_s=30),
        payment_job(TAKE_PAYMENT_JOB, take_payment, give_up_payment),
        payment_job(REFUND_PAYMENT_JOB, refund, refund_gave_up),
        Job(
            name=SEND_ORDER_EMAIL_JOB,
            run=send_email,
            timeout_s=EMAIL_JOB_TIMEOUT_S,
            max_tries=settings.order_email_max_tries,
            retry_base_s=settings.order_email_retry_base_s,
            on_exhausted=email_gave_up,
            keep_result_s=0,  # so the redrive can send it again once it has given up
        ),
    ]


def cron_jobs(orders: OrderService, saga: PaymentSaga, emails: OrderEmails) -> list[CronJob]:
    return [
        # The safety net under the per-order deferred job: catches orders whose job was lost
        # (Redis down at placement, a worker killed mid-job).
        CronJob(
            name="orders.expire_stale_orders",
            run=orders.expire_stale_orders,
            second={0},
            run_at_startup=True,
            timeout_s=CRON_TIMEOUT_S,
        ),
        CronJob(
            name="orders.redrive_payments",
            run=saga.redrive,
            second={15, 45},
            run_at_startup=True,
            timeout_s=CRON_TIMEOUT_S,
        ),
        CronJob(
            name="orders.redrive_emails",
            run=emails.redrive,
            second={30},
            run_at_startup=True,
            timeout_s=CRON_TIMEOUT_S,
        ),
        CronJob(
            name="orders.purge_idempotency_keys",
            run=orders.purge_idempotency_keys,
            minute={7},
            second={30},
            timeout_s=CRON_TIMEOUT_S,
        ),
    ]
