"""What a module sees when another process does not answer well: retries for idempotent calls
only, a circuit breaker per peer, timeouts, and always `PeerUnavailableError` (a 503 with
Retry-After for an HTTP caller, a later retry for a job), never a 500. The peer here is a real
HTTP server on a local socket whose answers each test chooses."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.config import Settings
from app.core.context import request_id_var, traceparent_var
from app.core.peers import PeerConnections, PeerUnavailableError
from app.modules.catalog.client import CatalogClient
from devtools.servers import free_port
from tests.conftest import TEST_SERVICE_TOKEN, clock_moved_on
from tests.sockets import on_a_socket

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ANY = TypeAdapter(Any)


@dataclass
class FakePeer:
    """Answers each request with the next planned answer (then `otherwise`), after `delay_s`."""

    planned: deque[tuple[int, Any]] = field(default_factory=deque)
    otherwise: tuple[int, Any] = (200, [])
    delay_s: float = 0.0
    seen: list[Request] = field(default_factory=list)

    async def answer(self, request: Request) -> Response:
        self.seen.append(request)
        await asyncio.sleep(self.delay_s)
        status, body = self.planned.popleft() if self.planned else self.otherwise
        return JSONResponse(body, status_code=status)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakePeer, str]]:
    peer = FakePeer()
    methods = ["GET", "PUT", "POST"]
    app = Starlette(routes=[Route("/{path:path}", peer.answer, methods=methods)])
    async with on_a_socket(app) as url:
        yield peer, url


def connections(settings: Settings, url: str, **overrides: Any) -> PeerConnections:
    values = {
        "catalog_url": url,
        "peer_retry_attempts": 3,
        "peer_retry_wait_initial_s": 0.01,
        "peer_retry_wait_max_s": 0.02,
        **overrides,
    }
    return PeerConnections(settings.model_copy(update=values))


async def test_a_read_is_retried_through_transient_failures(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.planned.extend([(503, {}), (502, {})])
    catalog = CatalogClient(connections(settings, url).peer("catalog"))

    assert await catalog.products_for_order([uuid4()]) == []
    assert len(peer.seen) == 3


async def test_a_read_that_keeps_failing_ends_as_peer_unavailable(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.otherwise = (503, {})
    catalog = CatalogClient(connections(settings, url).peer("catalog"))

    with pytest.raises(PeerUnavailableError) as raised:
        await catalog.products_for_order([uuid4()])
    assert len(peer.seen) == 3
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "2"


async def test_a_call_that_is_not_idempotent_is_not_retried(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.otherwise = (503, {})
    catalog = connections(settings, url).peer("catalog")

    with pytest.raises(PeerUnavailableError):
        await catalog.post("/internal/anything", into=ANY, body={}, idempotent=False)
    assert len(peer.seen) == 1


async def test_a_refusal_is_neither_retried_nor_counted_by_the_breaker(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.otherwise = (401, {"type": "invalid-service-credential"})
    pool = connections(settings, url, peer_breaker_threshold=2)
    catalog = CatalogClient(pool.peer("catalog"))

    for _ in range(3):
        with pytest.raises(PeerUnavailableError, match="refused the call with 401"):
            await catalog.products_for_order([uuid4()])
    assert len(peer.seen) == 3
    assert pool.circuits.get("catalog") != "opened"


async def test_an_answer_out_of_contract_is_peer_unavailable(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.otherwise = (200, [{"product_id": "not-a-uuid"}])
    catalog = CatalogClient(connections(settings, url).peer("catalog"))

    with pytest.raises(PeerUnavailableError, match="out of contract"):
        await catalog.products_for_order([uuid4()])


async def test_the_breaker_opens_fails_fast_and_half_opens_to_probe(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    peer.otherwise = (503, {})
    pool = connections(
        settings, url, peer_retry_attempts=1, peer_breaker_threshold=2, peer_breaker_reset_s=0.5
    )
    catalog = CatalogClient(pool.peer("catalog"))
    for _ in range(2):
        with pytest.raises(PeerUnavailableError):
            await catalog.products_for_order([uuid4()])
    assert pool.circuits["catalog"] == "opened"

    with pytest.raises(PeerUnavailableError, match="circuit open") as raised:
        await catalog.products_for_order([uuid4()])
    assert len(peer.seen) == 2  # failed fast: the peer was not asked
    assert raised.value.headers["Retry-After"] == "1"

    peer.otherwise = (200, [])
    with clock_moved_on(0.6):
        probed = await catalog.products_for_order([uuid4()])
    assert probed == []  # the probe went through
    assert pool.circuits["catalog"] == "closed"
    assert len(peer.seen) == 3


async def test_a_slow_peer_times_out(settings: Settings, fake: tuple[FakePeer, str]) -> None:
    peer, url = fake
    peer.delay_s = 2.0
    pool = connections(settings, url, peer_read_timeout_s=0.2, peer_retry_attempts=2)

    with pytest.raises(PeerUnavailableError, match="ReadTimeout"):
        await CatalogClient(pool.peer("catalog")).products_for_order([uuid4()])
    assert len(peer.seen) == 2


async def test_a_peer_nobody_listens_for_is_unavailable(settings: Settings) -> None:
    pool = connections(settings, f"http://127.0.0.1:{free_port()}")

    with pytest.raises(PeerUnavailableError, match="ConnectError"):
        await CatalogClient(pool.peer("catalog")).products_for_order([uuid4()])


async def test_the_request_id_trace_and_credential_are_passed_on(
    settings: Settings, fake: tuple[FakePeer, str]
) -> None:
    peer, url = fake
    catalog = CatalogClient(connections(settings, url).peer("catalog"))
    request_token = request_id_var.set("req-from-the-caller")
    trace_token = traceparent_var.set(TRACEPARENT)
    try:
        await catalog.products_for_order([uuid4()])
        # Recording traces here, the call carries this process's span instead.
        tracer = TracerProvider().get_tracer("tests")
        with tracer.start_as_current_span("checkout") as span:
            await catalog.products_for_order([uuid4()])
            trace_id = f"{span.get_span_context().trace_id:032x}"
    finally:
        request_id_var.reset(request_token)
        traceparent_var.reset(trace_token)

    first, second = peer.seen
    assert first.headers["x-request-id"] == "req-from-the-caller"
    assert first.headers["traceparent"] == TRACEPARENT
    assert first.headers["x-service-token"] == TEST_SERVICE_TOKEN
    assert second.headers["traceparent"].split("-")[1] == trace_id
    assert second.headers["x-request-id"] == "req-from-the-caller"
