"""An in-process stand-in for a provider's test mode, for dev runs: no network, no account.

`pm_card_visa` approves, `pm_card_chargeDeclined` declines, `pm_card_slow` approves after
`slow_s`; any other token is declined as unknown. Answers are remembered per idempotency key,
as a real provider does.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

from app.modules.orders.payments.port import PaymentDeclinedError

APPROVE = "pm_card_visa"
DECLINE = "pm_card_chargeDeclined"
SLOW = "pm_card_slow"


class SandboxPayments:
    def __init__(self, slow_s: float) -> None:
        self._slow_s = slow_s
        # A task per key: a concurrent repeat waits for the first call's answer, as at a provider.
        self._answers: dict[str, asyncio.Task[str | PaymentDeclinedError]] = {}

    async def authorise(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: Decimal,
        currency: str,
        payment_method: str,
    ) -> str:
        if idempotency_key not in self._answers:
            self._answers[idempotency_key] = asyncio.create_task(self._decide(payment_method))
        answer = await asyncio.shield(self._answers[idempotency_key])
        if isinstance(answer, PaymentDeclinedError):
            raise answer
        return answer

    async def _decide(self, payment_method: str) -> str | PaymentDeclinedError:
        if payment_method == SLOW:
            await asyncio.sleep(self._slow_s)
        elif payment_method == DECLINE:
            return PaymentDeclinedError("card_declined")
        elif payment_method != APPROVE:
            return PaymentDeclinedError("unknown_payment_method")
        return f"pi_sandbox_{uuid4().hex}"

    async def capture(self, *, idempotency_key: str, payment_id: str) -> None:
        return None

    async def refund(self, *, idempotency_key: str, payment_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
