"""Background work of users: the password-reset and verification emails (sent after the request
committed), audit entries other services could not hand over directly, the hourly retention
sweep and the removal of accounts never verified."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.exc import DBAPIError

from app.core.jobs import CronJob, Job, RetryLater
from app.modules.users.schemas import AuditEntryIn
from app.modules.users.service import (
    RECORD_AUDIT_ENTRY_JOB,
    SEND_PASSWORD_RESET_JOB,
    SEND_VERIFICATION_EMAIL_JOB,
    AuditLog,
    PasswordResetService,
    RetentionService,
)
from app.modules.users.verification import EmailVerificationService


def jobs(
    resets: PasswordResetService, verification: EmailVerificationService, audit: AuditLog
) -> list[Job]:
    async def send_password_reset(user_id: str) -> bool:
        return await resets.send_reset_email(UUID(user_id))

    async def send_verification_email(user_id: str) -> str:
        return await verification.send(UUID(user_id))

    async def record_audit_entry(entry_id: str, body: dict[str, Any]) -> str:
        try:
            await audit.record(AuditEntryIn.model_validate(body).entry(UUID(entry_id)))
        except (OSError, DBAPIError) as exc:  # the database is away: the entry must wait
            raise RetryLater(repr(exc)) from exc
        return "recorded"

    return [
        Job(name=SEND_PASSWORD_RESET_JOB, run=send_password_reset, timeout_s=60),
        Job(
            name=SEND_VERIFICATION_EMAIL_JOB,
            run=send_verification_email,
            timeout_s=60,  # room for an SMTP exchange whose every step may take SMTP_TIMEOUT_S
            retry_base_s=5.0,
        ),
        # Many tries far apart: the entry exists nowhere else (its id makes a rerun harmless).
        Job(
            name=RECORD_AUDIT_ENTRY_JOB,
            run=record_audit_entry,
            timeout_s=30,
            max_tries=20,
            retry_base_s=5,
            retry_max_s=600,
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
