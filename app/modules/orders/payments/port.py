"""What orders needs from a payment provider. Every call carries an idempotency key, so a
retried or re-run call never charges twice."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class PaymentDeclinedError(Exception):
    """The provider said no for good (a declined card, an invalid request): do not retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PaymentUnavailableError(Exception):
    """The provider could not be reached or failed (timeouts, 5xx, an open circuit): the call
    may succeed later."""


class PaymentGateway(Protocol):
    # The provider's circuit in this process: `closed`, `opened` (calls fail fast) or
    # `half-opened` (one call probes); read by the metrics, never by the saga.
    circuit_state: str

    async def authorise(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: Decimal,
        currency: str,
        payment_method: str,
    ) -> str:
        """Hold `amount` on the payment method for `reference` (our order id, shown to the
        merchant); returns the provider's payment id."""
        ...

    async def capture(self, *, idempotency_key: str, payment_id: str) -> None:
        """Take the money held by an authorisation."""
        ...

    async def refund(self, *, idempotency_key: str, payment_id: str) -> None:
        """Give the money back (or drop the hold when it was not captured yet)."""
        ...

    async def close(self) -> None: ...


def minor_units(amount: Decimal) -> int:
    """12.34 -> 1234: providers take integer amounts in the currency's smallest unit."""
    return int((amount * 100).to_integral_value())
