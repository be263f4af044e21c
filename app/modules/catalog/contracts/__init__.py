"""What other modules may know about the catalog: its facade, its DTOs and its events."""

from app.modules.catalog.contracts.events import (
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from app.modules.catalog.contracts.facade import CatalogFacade, ProductSnapshot

__all__ = [
    "CatalogFacade",
    "ProductSnapshot",
    "StockReleased",
    "StockReservationFailed",
    "StockReserved",
]
