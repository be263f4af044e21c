"""Background work of users: the password-reset and verification emails (sent after the request
committed), the hourly retention sweep and the removal of accounts never verified."""

from __future__ import annotations

from uuid import UUID

from app.core.jobs import CronJob, Job
from app.modules.users.service import (
    SEND_PASSWORD_RESET_JOB,
    SEND_VERIFICATION_EMAIL_JOB,
    PasswordResetService,
    RetentionService,
)
from app.modules.users.verification import EmailVerificationService


def jobs(resets: PasswordResetService, verification: EmailVerificationService) -> list[Job]:
    async def send_password_reset(user_id: str) -> bool:
        return await resets.send_reset_email(UUID(user_id))

    async def send_verification_email(user_id: str) -> str:
        return await verification.send(UUID(user_id))

    return [
        Job(name=SEND_PASSWORD_RESET_JOB, run=send_password_reset, timeout_s=60),
        Job(
            name=SEND_VERIFICATION_EMAIL_JOB,
            run=send_verification_email,
            timeout_s=60,  # room for an SMTP exchange whose every step may take SMTP_TIMEOUT_S
            retry_base_s=5.0,
        ),
    ]


def cron_jobs(retention: RetentionService, verification: EmailVerificationService) -> list[CronJob]:
    return [
        CronJob(name="users.apply_retention", run=retention.apply, minute={23}, second={0}),
        CronJob(
            name="users.remove_unverified_accounts",
            run=verification.remove_unverified,
            minute={41},
            second={0},
        ),
    ]
