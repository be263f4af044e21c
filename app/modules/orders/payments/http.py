"""The HTTP adapter for a Stripe-like provider API.

Each call has connect/read timeouts; transient failures (transport errors, timeouts, 5xx, 409, 429)
are retried with exponential backoff and jitter (stamina); every attempt passes a circuit
breaker (purgatory) that opens after repeated transient failures, then fails fast until it
half-opens to let a probe through. A decline is an answer, not an outage: it is neither retried
nor counted by the breaker. Every call sends an `Idempotency-Key`, so a retry is never a second
charge.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import stamina
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.base import Event
from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import OpenedState

from app.core.logging import get_logger
from app.modules.orders.payments.port import (
    PaymentDeclinedError,
    PaymentUnavailableError,
    minor_units,
)
from app.modules.orders.settings import OrdersSettings

CIRCUIT = "payments"
# 429: rate limited; 409: the same idempotency key is still being processed (a concurrent call).
_TRANSIENT_STATUSES = frozenset({409, 429})
_log = get_logger("keystone.orders.payments")


class _TransientStatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"provider answered {status}")


def _transient(exc: Exception) -> bool:
    return isinstance(exc, _TransientStatusError | httpx.TransportError)


class HttpPayments:
    def __init__(self, settings: OrdersSettings) -> None:
        if not settings.payment_api_url:
            raise RuntimeError("PAYMENT_PROVIDER=http needs PAYMENT_API_URL")
        key = settings.payment_api_key.get_secret_value() if settings.payment_api_key else ""
        self._http = httpx.AsyncClient(
            base_url=settings.payment_api_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(
                settings.payment_read_timeout_s, connect=settings.payment_connect_timeout_s
            ),
        )
        self._settings = settings
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.payment_breaker_threshold,
            default_ttl=settings.payment_breaker_reset_s,
        )
        self._breakers.add_listener(self._on_breaker_event)
        self.circuit_state = "closed"

    async def authorise(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: Decimal,
        currency: str,
        payment_method: str,
    ) -> str:
        body = {
            "amount": minor_units(amount),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "capture_method": "manual",
            "confirm": True,
            "metadata": {"reference": reference},
        }
        intent = await self._post("/v1/payment_intents", idempotency_key, body)
        payment_id: str = intent["id"]
        return payment_id

    async def capture(self, *, idempotency_key: str, payment_id: str) -> None:
        await self._post(f"/v1/payment_intents/{payment_id}/capture", idempotency_key, {})

    async def refund(self, *, idempotency_key: str, payment_id: str) -> None:
        await self._post("/v1/refunds", idempotency_key, {"payment_intent": payment_id})

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, idempotency_key: str, body: dict[str, Any]) -> Any:
        settings = self._settings
        try:
            async for attempt in stamina.retry_context(
                on=_transient,
                attempts=settings.payment_retry_attempts,
                timeout=None,
                wait_initial=settings.payment_retry_wait_initial_s,
                wait_max=settings.payment_retry_wait_max_s,
                wait_jitter=settings.payment_retry_wait_initial_s,
            ):
                with attempt:
                    response = await self._attempt(path, idempotency_key, body)
        except OpenedState as exc:
            _log.warning("payment provider circuit is open; failing fast", path=path)
            raise PaymentUnavailableError("the payment provider's circuit is open") from exc
        except (_TransientStatusError, httpx.TransportError) as exc:
            _log.warning("payment provider unavailable", path=path, error=repr(exc))
            raise PaymentUnavailableError(f"payment provider unavailable: {exc!r}") from exc
        return response.json()

    async def _attempt(
        self, path: str, idempotency_key: str, body: dict[str, Any]
    ) -> httpx.Response:
        breaker = await self._breakers.get_breaker(CIRCUIT)
        async with breaker:
            response = await self._http.post(
                path, json=body, headers={"Idempotency-Key": idempotency_key}
            )
            if response.status_code >= 500 or response.status_code in _TRANSIENT_STATUSES:
                raise _TransientStatusError(response.status_code)
        if response.is_error:
            raise PaymentDeclinedError(_error_code(response))
        return response

    def _on_breaker_event(self, name: str, kind: str, event: Event) -> None:
        if kind == "state_changed" and isinstance(event, ContextChanged):
            self.circuit_state = event.state
            log = _log.error if event.state == "opened" else _log.warning
            log("payment circuit changed state", circuit=name, state=event.state)


def _error_code(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"
    return str(code)[:100]
