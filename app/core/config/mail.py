"""Outgoing email (app/core/mail.py): the SMTP server every module's mail goes through."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from app.core.config.base import SettingsBase


class MailSettings(SettingsBase):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65_535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_from: str = "Keystone <no-reply@keystone.local>"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
