"""Settings for the tests: the core's and every module's from one set of values, as a process
hosting every module reads them from its environment (app/settings.py)."""

from __future__ import annotations

from typing import Any

from app.core.config import Settings, SettingsBase
from app.settings import MODULE_SETTINGS, every_settings_class


def _own(settings_class: type[SettingsBase], values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name in settings_class.model_fields}


def _refuse_unknown(values: dict[str, Any]) -> None:
    # Each class ignores names it does not declare: a misspelt or misplaced override would
    # silently test the default.
    known = {name for one in every_settings_class() for name in one.model_fields}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"no settings class declares {sorted(unknown)}")


def load_settings(**values: Any) -> Settings:
    """Every class from `values` and the environment (never from `.env`), each taking the
    names it declares; the core's first, as a process reads them."""
    _refuse_unknown(values)
    core = Settings(_env_file=None, **_own(Settings, values))  # type: ignore[call-arg]
    modules = [
        module(_env_file=None, **_own(module, values))  # type: ignore[call-arg]
        for module in MODULE_SETTINGS.values()
    ]
    return core.with_modules(*modules)


def change_settings(settings: Settings, **changes: Any) -> Settings:
    """`settings` with `changes`, each to the class that declares it (unvalidated, as
    `model_copy` is)."""
    _refuse_unknown(changes)
    modules = [
        settings.module(module).model_copy(update=_own(module, changes))
        for module in MODULE_SETTINGS.values()
        if _own(module, changes)
    ]
    return settings.model_copy(update=_own(Settings, changes)).with_modules(*modules)


# Every setting's name (lower case), whichever class declares it.
SETTING_NAMES = frozenset(name for one in every_settings_class() for name in one.model_fields)
