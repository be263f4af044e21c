"""What other modules may know about the catalog: its facade, its DTOs and its events."""

from app.modules.catalog.contracts.events import (
    CategoryChanged,
    ProductArchived,
    ProductCreated,
    ProductUpdated,
    StockChanged,
    StockCommitFailed,
    StockReleased,
    StockReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from app.modules.catalog.contracts.facade import CatalogFacade, ProductSnapshot

__all__ = [
    "CatalogFacade",
    "CategoryChanged",
    "ProductArchived",
    "ProductCreated",
    "ProductSnapshot",
    "ProductUpdated",
    "StockChanged",
    "StockCommitFailed",
    "StockReleased",
    "StockReservationExpired",
    "StockReservationFailed",
    "StockReserved",
]
