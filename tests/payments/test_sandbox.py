"""The sandbox adapter behaves like a provider's test mode, its state in Redis: answers kept
per idempotency key across instances (a worker that crashed and the one that retries), capture
and refund that change the payment, refusals a provider would give, and a listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from app.core.config import Settings
from app.modules.orders.payments.port import PaymentDeclinedError
from app.modules.orders.payments.sandbox import SandboxPayments


@pytest.fixture
async def sandbox_redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require_redis_url().rsplit("/", 1)[0] + "/6")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def sandbox(redis: Redis, slow_s: float = 0) -> SandboxPayments:
    """A new adapter instance: as another process (or the same one after a crash) sees it."""
    return SandboxPayments(lambda: redis, slow_s=slow_s)


async def authorise(
    payments: SandboxPayments, key: str, method: str = "pm_card_visa", amount: str = "12.34"
) -> str:
    return await payments.authorise(
        idempotency_key=key,
        reference=f"order-{key}",
        amount=Decimal(amount),
        currency="EUR",
        payment_method=method,
    )


async def refused(call: asyncio.Future[None] | object) -> str:
    with pytest.raises(PaymentDeclinedError) as refusal:
        await call  # type: ignore[misc]
    return refusal.value.reason


async def test_visa_approves_and_a_repeat_returns_the_same_payment(sandbox_redis: Redis) -> None:
    payments = sandbox(sandbox_redis)

    first = await authorise(payments, "k1")

    assert first.startswith("pi_sandbox_")
    assert await authorise(payments, "k1") == first
    assert await authorise(payments, "k2") != first


async def test_a_retry_after_a_crash_replays_the_same_intent(sandbox_redis: Redis) -> None:
    """The worker authorised, then died before saving the payment id: the retry, in a new
    process, gets the same payment, and nothing more is held."""
    crashed = sandbox(sandbox_redis)
    held = await authorise(crashed, "order-1")
    del crashed

    retried = await authorise(sandbox(sandbox_redis), "order-1")

    assert retried == held
    listed = await sandbox(sandbox_redis).payments(limit=10)
    assert [p["id"] for p in listed] == [held]
    assert listed[0]["status"] == "requires_capture"
    assert listed[0]["amount"] == 1234


@pytest.mark.parametrize(
    ("method", "reason"),
    [("pm_card_chargeDeclined", "card_declined"), ("pm_card_other", "unknown_payment_method")],
)
async def test_declines_are_answers_kept_like_any_other(
    sandbox_redis: Redis, method: str, reason: str
) -> None:
    assert await refused(authorise(sandbox(sandbox_redis), "k", method)) == reason
    assert await refused(authorise(sandbox(sandbox_redis), "k", method)) == reason
    [declined] = await sandbox(sandbox_redis).payments(limit=10)
    assert declined["status"] == "declined"
    assert declined["decline_code"] == reason


async def test_slow_approves_and_concurrent_repeats_share_one_answer(
    sandbox_redis: Redis,
) -> None:
    instances = [sandbox(sandbox_redis, slow_s=0.2) for _ in range(3)]

    answers = await asyncio.gather(*(authorise(p, "k", "pm_card_slow") for p in instances))

    assert len(set(answers)) == 1
    assert len(await instances[0].payments(limit=10)) == 1


async def test_a_key_reused_for_another_request_is_refused(sandbox_redis: Redis) -> None:
    payments = sandbox(sandbox_redis)
    await authorise(payments, "k", amount="1.00")
    assert await refused(authorise(payments, "k", amount="2.00")) == "idempotency_key_reused"


async def test_capture_then_refund_change_the_payment_and_repeats_are_idempotent(
    sandbox_redis: Redis,
) -> None:
    payments = sandbox(sandbox_redis)
    payment_id = await authorise(payments, "order-7")

    await payments.capture(idempotency_key="order-7:capture", payment_id=payment_id)
    await sandbox(sandbox_redis).capture(idempotency_key="order-7:capture", payment_id=payment_id)
    [captured] = await payments.payments(limit=10)
    assert captured["status"] == "succeeded"
    assert "captured_at" in captured

    await payments.refund(idempotency_key="order-7:refund", payment_id=payment_id)
    await sandbox(sandbox_redis).refund(idempotency_key="order-7:refund", payment_id=payment_id)
    [refunded] = await payments.payments(limit=10)
    assert refunded["status"] == "refunded"
    assert "refunded_at" in refunded


async def test_refusals_a_provider_would_give(sandbox_redis: Redis) -> None:
    payments = sandbox(sandbox_redis)
    unknown = "pi_sandbox_nobody"
    assert await refused(payments.refund(idempotency_key="r0", payment_id=unknown)) == (
        "resource_missing"
    )
    assert await refused(payments.capture(idempotency_key="c0", payment_id=unknown)) == (
        "resource_missing"
    )
    held = await authorise(payments, "k1")
    await payments.capture(idempotency_key="c1", payment_id=held)
    # Captured once; another key cannot capture it again.
    assert await refused(payments.capture(idempotency_key="c2", payment_id=held)) == (
        "payment_intent_unexpected_state"
    )
    await payments.refund(idempotency_key="r1", payment_id=held)
    assert await refused(payments.refund(idempotency_key="r2", payment_id=held)) == (
        "charge_already_refunded"
    )
    # A declined authorisation holds nothing to refund.
    await refused(authorise(payments, "k3", "pm_card_chargeDeclined"))
    [declined, _] = await payments.payments(limit=10)
    assert await refused(payments.refund(idempotency_key="r3", payment_id=declined["id"])) == (
        "payment_intent_unexpected_state"
    )


async def test_refunding_a_hold_not_captured_drops_it(sandbox_redis: Redis) -> None:
    payments = sandbox(sandbox_redis)
    held = await authorise(payments, "k")
    await payments.refund(idempotency_key="k:refund", payment_id=held)
    [dropped] = await payments.payments(limit=10)
    assert dropped["status"] == "canceled"
    assert await refused(payments.capture(idempotency_key="k:capture", payment_id=held)) == (
        "payment_intent_unexpected_state"
    )


async def test_listing_is_newest_first_and_filters_by_reference(sandbox_redis: Redis) -> None:
    payments = sandbox(sandbox_redis)
    ids = [await authorise(payments, f"k{n}") for n in range(3)]

    assert [p["id"] for p in await payments.payments(limit=2)] == ids[::-1][:2]
    [one] = await payments.payments(limit=10, reference="order-k1")
    assert one["id"] == ids[1]
    assert one["currency"] == "EUR"
    assert one["payment_method"] == "pm_card_visa"
