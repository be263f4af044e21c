"""`CatalogFacade` over HTTP, for a process that does not host the catalog (app/core/peers.py
has the timeouts, retries, breaker and headers)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import TypeAdapter

from app.core.peers import Peer
from app.modules.catalog.contracts import ProductSnapshot
from app.modules.catalog.schemas import MAX_SNAPSHOT_IDS

_SNAPSHOTS = TypeAdapter(list[ProductSnapshot])


class CatalogClient:
    def __init__(self, peer: Peer) -> None:
        self._peer = peer

    async def products_for_order(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        return await self._snapshots(product_ids, include_archived=False)

    async def resolve_products(self, product_ids: Sequence[UUID]) -> list[ProductSnapshot]:
        return await self._snapshots(product_ids, include_archived=True)

    async def _snapshots(
        self, product_ids: Sequence[UUID], *, include_archived: bool
    ) -> list[ProductSnapshot]:
        unique = list(dict.fromkeys(product_ids))
        found: list[ProductSnapshot] = []
        for start in range(0, len(unique), MAX_SNAPSHOT_IDS):
            params = [
                ("id", str(product_id)) for product_id in unique[start : start + MAX_SNAPSHOT_IDS]
            ]
            params.append(("include_archived", "true" if include_archived else "false"))
            batch = await self._peer.get(
                "/internal/catalog/products", into=_SNAPSHOTS, params=params
            )
            found.extend(batch)
        return found
