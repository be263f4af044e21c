"""The users module's settings: sessions, password resets, email verification, retention.

Read only by a process hosting users (app/modules/users/module.py). The access-token keys are
core settings (app/core/config/tokens.py): every process verifies tokens.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from app.core.config.base import SettingsBase, check_rate_limit


class UsersSettings(SettingsBase):
    refresh_token_ttl_s: int = Field(default=1_209_600, ge=60, le=31_536_000)

    password_reset_ttl_s: int = Field(default=1_800, ge=60, le=86_400)
    audit_retention_days: int = Field(default=365, ge=1, le=3_650)
    # The page of the front end that reads ?token=...; the email shows the link and the token.
    password_reset_url: str = "http://127.0.0.1:8000/reset-password"  # noqa: S105 - a URL

    # Email verification: a self-registered account verifies its address before it may order
    # (orders' REQUIRE_VERIFIED_EMAIL_FOR_ORDERS); one never verified is deleted after
    # UNVERIFIED_RETENTION_DAYS. The email shows EMAIL_VERIFICATION_URL?token=... and the token.
    email_verification_ttl_s: int = Field(default=172_800, ge=300, le=2_592_000)
    email_verification_url: str = "http://127.0.0.1:8000/verify-email"
    unverified_retention_days: int = Field(default=30, ge=1, le=3_650)
    # Per account: how often a signed-in user may ask for another verification email.
    rate_limit_verification_email: str = "3/hour"

    @field_validator("rate_limit_verification_email")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        return check_rate_limit(value)
