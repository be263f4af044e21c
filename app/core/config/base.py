"""What every settings class shares, the core's and each module's: the same sources, the same
refusal rules, and the environment the process runs in.

Settings come from environment variables (12-factor), `.env`, then SECRETS_DIR
(app/core/secret_files.py); every variable is documented in `.env.example`. A class reads its
own fields only, so a process reads the core's settings and those of the modules it hosts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from limits import parse as parse_rate_limit
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.core.secret_files import secret_file_sources

ALL_MODULES = ("users", "catalog", "orders")


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


class SettingsBase(BaseSettings):
    """The base of every settings class. Each also reads APP_ENV: staging and prod refuse
    unsafe values, naming the variable at fault, so a misconfigured deploy fails its release
    step, not its first user."""

    # hide_input_in_errors: a refused config must not print its secrets into the deploy log.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    app_env: Environment = Environment.DEV

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secrets may also come as files in SECRETS_DIR (app/core/secret_files.py).
        return secret_file_sources(settings_cls, init_settings, env_settings, dotenv_settings)

    @property
    def refuses_unsafe(self) -> bool:
        """Staging and prod: reachable from outside, so unsafe values are refused there."""
        return self.app_env in (Environment.STAGING, Environment.PROD)


def split_csv(value: Any) -> Any:
    """`a, b,` -> ["a", "b"]: list settings are comma lists in the environment."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_rate_limit(value: str) -> str:
    try:
        parse_rate_limit(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a rate limit; write e.g. '300/minute' or '10/15minutes'"
        ) from None
    return value
