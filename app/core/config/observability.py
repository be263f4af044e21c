"""Logs, errors, metrics and traces (app/core/logging.py, observability.py, telemetry.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from app.core.config.base import Environment, SettingsBase


class ObservabilitySettings(SettingsBase):
    log_level: str = "INFO"
    log_json: bool | None = None

    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    # GET /metrics answers only with `Authorization: Bearer <metrics_token>` when a token is
    # set (staging/prod require one).
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None
    # Where the worker serves its own GET /metrics (same token) while metrics are enabled.
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside its container
    worker_metrics_port: int = Field(default=9100, ge=0, le=65_535)
    # The standard OpenTelemetry variable: traces go to {endpoint}/v1/traces (OTLP/HTTP) when set.
    otel_exporter_otlp_endpoint: str | None = None
    # Share of new traces recorded; a trace begun upstream keeps the caller's decision. A recorded
    # trace costs the API far more than an unrecorded one (README "Metrics and tracing").
    tracing_sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(
                "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, e.g. http://collector:4318"
            )
        return value.rstrip("/")

    def refuse_unsafe_metrics(self) -> None:
        if self.metrics_enabled and (
            self.metrics_token is None or len(self.metrics_token.get_secret_value()) < 32
        ):
            raise ValueError(
                "METRICS_TOKEN must be a random value of at least 32 characters in staging/prod "
                "while METRICS_ENABLED is true"
            )

    @property
    def tracing_enabled(self) -> bool:
        return self.otel_exporter_otlp_endpoint is not None

    @property
    def logs_as_json(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.app_env not in (Environment.DEV, Environment.TEST)
