"""Background work of users: the password-reset email (sent after the request committed) and
the hourly retention sweep."""

from __future__ import annotations

from uuid import UUID

from app.core.jobs import CronJob, Job
from app.modules.users.service import (
    SEND_PASSWORD_RESET_JOB,
    PasswordResetService,
    RetentionService,
)


def jobs(resets: PasswordResetService) -> list[Job]:
    async def send_password_reset(user_id: str) -> bool:
        return await resets.send_reset_email(UUID(user_id))

    return [Job(name=SEND_PASSWORD_RESET_JOB, run=send_password_reset, timeout_s=60)]


def cron_jobs(retention: RetentionService) -> list[CronJob]:
    return [CronJob(name="users.apply_retention", run=retention.apply, minute={23}, second={0})]
