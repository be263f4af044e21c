"""Settings read from files: one file per setting, named after it, in SECRETS_DIR.

That is how Kubernetes mounts a Secret (and the External Secrets Operator's copy of a secret
manager's values), how Docker and Compose mount secrets (/run/secrets), and how Fly machines can
receive them; a file keeps the value out of the process environment, which crash reports, child
processes and `ps e` can show. An environment variable still wins over a file, but in staging and
prod a setting given both ways with different values is refused, naming the setting: one of the
two is stale, and guessing which would run production on the wrong secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource

SECRETS_DIR_VARIABLE = "SECRETS_DIR"
STRICT_ENVIRONMENTS = frozenset({"staging", "prod"})


class SecretFilesSettingsSource(SecretsSettingsSource):
    """The files of SECRETS_DIR (file names match setting names in any case)."""

    def __init__(self, settings_cls: type[BaseSettings], secrets_dir: Path) -> None:
        super().__init__(settings_cls, secrets_dir=secrets_dir, case_sensitive=False)


def secret_file_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources in order of precedence: arguments, environment, .env, then SECRETS_DIR."""
    folder = os.environ.get(SECRETS_DIR_VARIABLE)
    if not folder:
        return init_settings, env_settings, dotenv_settings
    if not Path(folder).is_dir():
        raise ValueError(f"{SECRETS_DIR_VARIABLE}={folder} is not a directory")
    files = SecretFilesSettingsSource(settings_cls, Path(folder))
    _refuse_conflicts(init_settings(), env_settings(), files())
    return init_settings, env_settings, dotenv_settings, files


def _refuse_conflicts(init: dict[str, Any], env: dict[str, Any], files: dict[str, Any]) -> None:
    environment = str(init.get("app_env") or env.get("app_env") or files.get("app_env") or "")
    if environment.lower() not in STRICT_ENVIRONMENTS:
        return
    # Files are read without their trailing newline; a PEM in the environment usually keeps it.
    for name in sorted(set(env) & set(files)):
        if str(env[name]).strip() != str(files[name]).strip():
            raise ValueError(
                f"{name.upper()} is set both in the environment and in "
                f"{SECRETS_DIR_VARIABLE} with different values; keep one"
            )
