"""Background work of orders: expiring orders nobody answered for."""

from __future__ import annotations

from uuid import UUID

from app.core.jobs import CronJob, Job
from app.modules.orders.service import EXPIRE_ORDER_JOB, OrderService


def jobs(orders: OrderService) -> list[Job]:
    async def expire_order(order_id: str) -> bool:
        return await orders.expire_if_pending(UUID(order_id))

    return [Job(name=EXPIRE_ORDER_JOB, run=expire_order, timeout_s=30)]


def cron_jobs(orders: OrderService) -> list[CronJob]:
    # The safety net under the per-order deferred job: catches orders whose job was lost
    # (Redis down at placement, a worker killed mid-job).
    return [
        CronJob(
            name="orders.expire_stale_orders",
            run=orders.expire_stale_orders,
            second={0},
            run_at_startup=True,
        )
    ]
