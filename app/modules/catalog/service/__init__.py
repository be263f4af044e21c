"""Use cases of the catalog: products, categories, and stock held for orders.

One file per use case: `products` (public reads from the cache, writes, what other modules
ask), `listing` (`GET /products` and its cursor), `categories`, `stock` (held for orders) and
`expiry` (stock held too long given back).
"""

from app.modules.catalog.service.categories import CategoryService
from app.modules.catalog.service.expiry import ReservationExpiry
from app.modules.catalog.service.listing import ListingRequest
from app.modules.catalog.service.products import CacheTtl, ProductService
from app.modules.catalog.service.stock import StockService

__all__ = [
    "CacheTtl",
    "CategoryService",
    "ListingRequest",
    "ProductService",
    "ReservationExpiry",
    "StockService",
]
