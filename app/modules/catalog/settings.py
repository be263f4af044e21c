"""The catalog module's settings: how long its responses are cached, how long stock is held.

Read only by a process hosting the catalog (app/modules/catalog/module.py).
"""

from __future__ import annotations

from pydantic import Field

from app.core.config.base import SettingsBase


class CatalogSettings(SettingsBase):
    # How long the Redis response cache (core's CACHE_* settings) keeps a product and a
    # listing page: a write is visible to every reader within these at worst; event-driven
    # invalidation makes it the relay's delay in practice.
    cache_product_ttl_s: int = Field(default=60, ge=1, le=86_400)
    cache_listing_ttl_s: int = Field(default=10, ge=1, le=86_400)
    # Cache-Control max-age on product reads, for browsers and CDNs (0: not cached there).
    catalog_http_max_age_s: int = Field(default=0, ge=0, le=86_400)
    # Stock held for an order nobody settled goes back on sale after this. It must outlive
    # orders' ORDER_PENDING_TIMEOUT_S, checked where both are hosted (app/bootstrap.py).
    reservation_ttl_s: int = Field(default=1_800, ge=1)
