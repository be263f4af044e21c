"""Each facade Protocol run two ways by the same test body: the provider's service in process,
and the HTTP client talking to the provider's real app, served on a real socket, on the same
database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from app.core.audit import AuditTrail
from app.core.config import Settings
from app.core.peers import PeerConnections
from app.core.privacy import PersonalDataSource
from app.modules.catalog import module as catalog
from app.modules.catalog.contracts import CatalogFacade
from app.modules.orders import module as orders
from app.modules.users import module as users
from app.modules.users.contracts import UsersFacade
from tests.sockets import on_a_socket


@dataclass(frozen=True)
class Facades:
    """What another module is handed: in process or over HTTP."""

    catalog: CatalogFacade
    users: UsersFacade
    audit: AuditTrail
    orders_personal_data: PersonalDataSource


@pytest.fixture(scope="session")
async def provider_url(app: FastAPI) -> AsyncIterator[str]:
    """The test app (every module) on a real socket: the provider of every facade."""
    async with on_a_socket(app) as url:
        yield url


@pytest.fixture(scope="session")
async def peers(settings: Settings, provider_url: str) -> AsyncIterator[PeerConnections]:
    """The HTTP side of a process that hosts no module: every peer is the provider app."""
    elsewhere = {f"{name}_url": provider_url for name in ("users", "catalog", "orders")}
    connections = PeerConnections(settings.model_copy(update=elsewhere))
    yield connections
    await connections.close()


def in_process(app: FastAPI) -> Facades:
    runtime = app.state.runtime
    personal_data = runtime.module("orders").personal_data
    assert personal_data is not None
    return Facades(
        catalog=catalog.facade(runtime.module("catalog")),
        users=users.facade(runtime.module("users")),
        audit=users.audit_trail(runtime.module("users")),
        orders_personal_data=personal_data,
    )


def over_http(app: FastAPI, peers: PeerConnections) -> Facades:
    return Facades(
        catalog=catalog.remote_facade(peers.peer("catalog")),
        users=users.remote_facade(peers.peer("users")),
        audit=users.remote_audit_trail(peers.peer("users"), app.state.runtime.core.jobs()),
        orders_personal_data=orders.remote_personal_data(peers.peer("orders")),
    )


@pytest.fixture(params=["in-process", "http"])
def facades(request: pytest.FixtureRequest, app: FastAPI) -> Facades:
    if request.param == "in-process":
        return in_process(app)
    return over_http(app, request.getfixturevalue("peers"))
