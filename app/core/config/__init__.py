"""Settings from environment variables (12-factor), with per-environment defaults.

`Settings` is the core's: what every process reads, composed of one class per concern
(database, redis, edge, mail, tokens, events, observability, process, topology). Each module's
own settings are a class in the module, read only where the module is hosted
(docs/adr/0019-settings-per-module.md). Production refuses to start on unsafe values and names
the variable at fault, so a misconfigured deploy fails its release step, not its first user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar, cast

from pydantic import PrivateAttr, model_validator

from app.core.config.base import ALL_MODULES, Environment, SettingsBase
from app.core.config.database import DatabaseSettings
from app.core.config.edge import EdgeSettings
from app.core.config.events import EventSettings
from app.core.config.mail import MailSettings
from app.core.config.observability import ObservabilitySettings
from app.core.config.process import ProcessSettings
from app.core.config.redis import RedisSettings
from app.core.config.tokens import TokenSettings
from app.core.config.topology import CALLER_NAME, TopologySettings

M = TypeVar("M", bound=SettingsBase)

__all__ = ["ALL_MODULES", "CALLER_NAME", "Environment", "Settings", "SettingsBase", "get_settings"]


class Settings(
    ProcessSettings,
    TopologySettings,
    DatabaseSettings,
    RedisSettings,
    TokenSettings,
    MailSettings,
    EdgeSettings,
    ObservabilitySettings,
    EventSettings,
):
    # The settings of the modules hosted here, by class: given (`with_modules`) or read from
    # the environment on first use.
    _modules: dict[type[SettingsBase], SettingsBase] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _only_users_signs(self) -> Settings:
        if self.jwt_private_key is not None and "users" not in self.hosted_anywhere:
            raise ValueError(
                "JWT_PRIVATE_KEY must be given only to the process hosting users: the others "
                "verify with users' public keys and must not be able to sign"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        # Staging too: it is reachable, and the dev secret is public in this repository.
        if not self.refuses_unsafe:
            return self
        if self.jwt_private_key is None and "users" in self.app_modules:
            raise ValueError(
                "JWT_PRIVATE_KEY must be set where users is hosted in staging/prod "
                "(python -m app.cli signing-key)"
            )
        if self.debug:
            raise ValueError("DEBUG must be false in staging/prod")
        self.refuse_unsafe_edge()
        if self.smtp_security == "none":
            raise ValueError("SMTP_SECURITY must be starttls or tls in staging/prod")
        if not self.has_database_for(self.hosted_anywhere):
            raise ValueError(
                "DATABASE_URL (or each hosted module's <MODULE>_DATABASE_URL) must be set in "
                "staging/prod"
            )
        if not self.redis_url:
            raise ValueError("REDIS_URL must be set in staging/prod")
        self.refuse_unsafe_metrics()
        return self

    def module(self, settings_class: type[M]) -> M:
        """A hosted module's settings (its own class, app/modules/<name>/settings.py): those
        given with `with_modules`, else read from the environment like these, once. Only the
        composition root asks, for the modules this process hosts."""
        found = self._modules.get(settings_class)
        if found is None:
            found = self._modules[settings_class] = settings_class()
        return cast(M, found)

    def with_modules(self, *given: SettingsBase) -> Settings:
        """A copy that hands out `given` instead of reading those modules' environment."""
        copy = self.model_copy()
        copy._modules = {**self._modules, **{type(one): one for one in given}}
        return copy


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
