"""Background work of the catalog: giving back stock held for orders nobody settled."""

from __future__ import annotations

from app.core.jobs import CronJob
from app.modules.catalog.service import ReservationExpiry

# Each batch commits on its own, so a sweep cut short by its timeout keeps what it did.
CRON_TIMEOUT_S = 30


def cron_jobs(expiry: ReservationExpiry) -> list[CronJob]:
    return [
        CronJob(
            name="catalog.expire_reservations",
            run=expiry.expire_overdue,
            second={30},
            run_at_startup=True,
            timeout_s=CRON_TIMEOUT_S,
        ),
    ]
