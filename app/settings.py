"""Every settings class of the application, and which of them a process reads.

The core's `Settings` (app/core/config/) is read by every process; each module's own class
(app/modules/<name>/settings.py) only where that module is hosted, so a split service neither
reads nor validates the settings of modules it does not run (docs/adr/0019-settings-per-module.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.config import Settings, SettingsBase
from app.modules.catalog import module as catalog
from app.modules.orders import module as orders
from app.modules.users import module as users

MODULE_SETTINGS: dict[str, type[SettingsBase]] = {
    "users": users.SETTINGS,
    "catalog": catalog.SETTINGS,
    "orders": orders.SETTINGS,
}


def every_settings_class() -> tuple[type[SettingsBase], ...]:
    """The core's, then each module's: together, every variable `.env.example` documents."""
    return (Settings, *MODULE_SETTINGS.values())


def check_module_settings(settings: Settings, hosting: Sequence[str]) -> None:
    """Read the hosted modules' settings before anything is wired, so a bad value stops the
    start naming its variable; then check what spans two modules hosted together."""
    for name in hosting:
        settings.module(MODULE_SETTINGS[name])
    if "catalog" in hosting and "orders" in hosting:
        # The catalog's expiry is the safety net for when orders never answers; expiring
        # first would take stock from orders that orders itself is still settling.
        hold = settings.module(catalog.SETTINGS).reservation_ttl_s
        timeout = settings.module(orders.SETTINGS).order_pending_timeout_s
        if hold <= timeout:
            raise ValueError(
                f"RESERVATION_TTL_S ({hold}) must be longer than "
                f"ORDER_PENDING_TIMEOUT_S ({timeout})"
            )
