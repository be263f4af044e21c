"""A small fake of a Stripe-like payment provider: a real HTTP server (Starlette under uvicorn,
in a thread, on a free port) speaking the API the HTTP adapter calls.

It keeps answers per idempotency key as a real provider does, counts every call per key, and
counts payment intents per order reference, so a test can prove nobody was charged twice. It
can be told how to behave on the next calls: answer, be slow, fail with a 500, drop the
connection after doing the work (the answer is lost, the charge is not), or decline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from devtools.servers import free_port

API_KEY = "sk_test_keystone"
OK, SLOW, FAIL, DROP, DECLINE = "ok", "slow", "fail", "drop", "decline"


class FakeProvider:
    def __init__(self) -> None:
        self.url = ""
        self.slow_s = 1.0
        self.default = OK
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # per idempotency key
        self.intents: dict[str, dict[str, Any]] = {}
        self.intents_per_reference: Counter[str] = Counter()
        self._answers: dict[str, tuple[int, dict[str, Any]]] = {}

    # --- what a test says and reads ------------------------------------------------------

    def behave(self, *next_calls: str, default: str | None = None) -> None:
        with self._lock:
            self._script = deque(next_calls)
            if default is not None:
                self.default = default

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.default = OK
            self.calls.clear()
            self.intents.clear()
            self.intents_per_reference.clear()
            self._answers.clear()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def captured(self) -> list[str]:
        return [
            i["metadata"]["reference"] for i in self.intents.values() if i["status"] == "succeeded"
        ]

    # --- the API -------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/payment_intents", self._endpoint(self._authorise), methods=["POST"]),
                Route(
                    "/v1/payment_intents/{intent_id}/capture",
                    self._endpoint(self._capture),
                    methods=["POST"],
                ),
                Route("/v1/refunds", self._endpoint(self._refund), methods=["POST"]),
            ]
        )

    def _endpoint(self, work: Any) -> _AsgiEndpoint:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                await _error(401, "invalid_api_key")(scope, receive, send)
                return
            key = request.headers.get("idempotency-key", "")
            with self._lock:
                self.calls[key] += 1
                mode = self._script.popleft() if self._script else self.default
            if mode == SLOW:
                await asyncio.sleep(self.slow_s)
            if mode == FAIL:
                await _error(500, "api_error")(scope, receive, send)
                return
            body = await request.json()
            with self._lock:
                if key not in self._answers:
                    self._answers[key] = work(request, body, decline=mode == DECLINE)
                status, answer = self._answers[key]
            if mode == DROP:
                await _drop(send)
                return
            await JSONResponse(answer, status_code=status)(scope, receive, send)

        return _AsgiEndpoint(endpoint)

    def _authorise(
        self, _: Request, body: dict[str, Any], decline: bool
    ) -> tuple[int, dict[str, Any]]:
        if decline or body["payment_method"] == "pm_card_chargeDeclined":
            return 402, {"error": {"type": "card_error", "code": "card_declined"}}
        intent = {
            "id": f"pi_{uuid4().hex[:24]}",
            "amount": body["amount"],
            "currency": body["currency"],
            "status": "requires_capture",
            "metadata": body["metadata"],
        }
        self.intents[intent["id"]] = intent
        self.intents_per_reference[body["metadata"]["reference"]] += 1
        return 200, intent

    def _capture(
        self, request: Request, _: dict[str, Any], decline: bool
    ) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(request.path_params["intent_id"])
        if intent is None or intent["status"] != "requires_capture":
            return 400, {"error": {"code": "payment_intent_unexpected_state"}}
        intent["status"] = "succeeded"
        return 200, intent

    def _refund(
        self, _: Request, body: dict[str, Any], decline: bool
    ) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(body["payment_intent"])
        if intent is None or intent["status"] not in ("requires_capture", "succeeded"):
            return 400, {"error": {"code": "charge_already_refunded"}}
        intent["status"] = "canceled" if intent["status"] == "requires_capture" else "refunded"
        return 200, {"id": f"re_{uuid4().hex[:24]}", "status": "succeeded"}


class _AsgiEndpoint:
    """A raw ASGI endpoint (Starlette treats a plain function as request -> response), so the
    fake can also break a connection off mid-answer."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code}}, status_code=status)


async def _drop(send: Send) -> None:
    """Start an answer and break off: the client sees the connection die mid-response."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
    raise ConnectionAbortedError("fake provider dropped the connection")


@contextmanager
def running_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    port = free_port()
    config = uvicorn.Config(
        provider.app(), host="127.0.0.1", port=port, log_level="critical", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-payment-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake payment provider did not start")
        time.sleep(0.02)
    provider.url = f"http://127.0.0.1:{port}"
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
