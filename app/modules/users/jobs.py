"""Background work of users: the password-reset email, sent after the request committed."""

from __future__ import annotations

from uuid import UUID

from app.core.jobs import Job
from app.modules.users.service import SEND_PASSWORD_RESET_JOB, PasswordResetService


def jobs(resets: PasswordResetService) -> list[Job]:
    async def send_password_reset(user_id: str) -> bool:
        return await resets.send_reset_email(UUID(user_id))

    return [Job(name=SEND_PASSWORD_RESET_JOB, run=send_password_reset, timeout_s=60)]
