"""The in-process sandbox adapter behaves like a provider's test mode."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.modules.orders.payments.port import PaymentDeclinedError
from app.modules.orders.payments.sandbox import SandboxPayments


async def authorise(sandbox: SandboxPayments, key: str, method: str) -> str:
    return await sandbox.authorise(
        idempotency_key=key,
        reference=key,
        amount=Decimal("1.00"),
        currency="EUR",
        payment_method=method,
    )


async def test_visa_approves_and_a_repeat_returns_the_same_payment() -> None:
    sandbox = SandboxPayments(slow_s=0)

    first = await authorise(sandbox, "k1", "pm_card_visa")

    assert first.startswith("pi_sandbox_")
    assert await authorise(sandbox, "k1", "pm_card_visa") == first
    assert await authorise(sandbox, "k2", "pm_card_visa") != first


@pytest.mark.parametrize(
    ("method", "reason"),
    [("pm_card_chargeDeclined", "card_declined"), ("pm_card_other", "unknown_payment_method")],
)
async def test_declines(method: str, reason: str) -> None:
    with pytest.raises(PaymentDeclinedError) as declined:
        await authorise(SandboxPayments(slow_s=0), "k", method)
    assert declined.value.reason == reason


async def test_slow_approves_and_concurrent_repeats_share_one_answer() -> None:
    sandbox = SandboxPayments(slow_s=0.2)

    answers = await asyncio.gather(*(authorise(sandbox, "k", "pm_card_slow") for _ in range(3)))

    assert len(set(answers)) == 1
