"""The orders module's settings: checkout, the payment provider, redrives and emails.

Read only by a process hosting orders (app/modules/orders/module.py), and refused there in
staging/prod without a real payment provider.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from app.core.config.base import SettingsBase


class OrdersSettings(SettingsBase):
    # An order still pending / stock_reserved is cancelled (its stock released) after this.
    order_pending_timeout_s: int = Field(default=900, ge=1)
    idempotency_key_ttl_s: int = Field(default=86_400, ge=60)
    # Only a customer who verified their email may order (users' EMAIL_VERIFICATION_*).
    require_verified_email_for_orders: bool = True

    payment_provider: Literal["sandbox", "http"] = "sandbox"
    payment_api_url: str | None = None
    payment_api_key: SecretStr | None = None
    payment_connect_timeout_s: float = Field(default=2.0, gt=0)
    payment_read_timeout_s: float = Field(default=5.0, gt=0)
    payment_retry_attempts: int = Field(default=3, ge=1, le=10)
    payment_retry_wait_initial_s: float = Field(default=0.2, ge=0)
    payment_retry_wait_max_s: float = Field(default=2.0, ge=0)
    payment_breaker_threshold: int = Field(default=5, ge=1)
    payment_breaker_reset_s: float = Field(default=30.0, gt=0)
    payment_sandbox_slow_s: float = Field(default=3.0, ge=0)
    payment_job_max_tries: int = Field(default=5, ge=1, le=50)
    payment_job_retry_base_s: float = Field(default=5.0, ge=0)
    payment_redrive_after_s: int = Field(default=60, ge=1)

    order_email_max_tries: int = Field(default=5, ge=1, le=50)
    order_email_retry_base_s: float = Field(default=5.0, ge=0)
    order_email_redrive_after_s: int = Field(default=300, ge=1)

    @model_validator(mode="after")
    def _real_payments_in_production(self) -> OrdersSettings:
        if self.refuses_unsafe and (self.payment_provider != "http" or not self.payment_api_url):
            raise ValueError(
                "PAYMENT_PROVIDER=http and PAYMENT_API_URL must be set in staging/prod"
            )
        return self
