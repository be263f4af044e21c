"""The HTTP payment adapter against a real (fake) provider server: timeouts, retries with
backoff on transient failures only, a circuit breaker, and idempotency keys that keep a retried
call from charging twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from app.modules.orders.payments.http import HttpPayments
from app.modules.orders.payments.port import PaymentDeclinedError, PaymentUnavailableError
from app.modules.orders.settings import OrdersSettings
from tests.conftest import clock_moved_on
from tests.fake_payment_provider import (
    API_KEY,
    DECLINE,
    DROP,
    FAIL,
    OK,
    SLOW,
    FakeProvider,
    running_provider,
)

ATTEMPTS = 3
THRESHOLD = 5
RESET_S = 0.5


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    fake_provider.slow_s = 1.0
    return fake_provider


def adapter_settings(url: str, **overrides: Any) -> OrdersSettings:
    values: dict[str, Any] = {
        "payment_provider": "http",
        "payment_api_url": url,
        "payment_api_key": API_KEY,
        "payment_read_timeout_s": 0.3,
        "payment_connect_timeout_s": 0.3,
        "payment_retry_attempts": ATTEMPTS,
        "payment_retry_wait_initial_s": 0.01,
        "payment_retry_wait_max_s": 0.05,
        "payment_breaker_threshold": THRESHOLD,
        "payment_breaker_reset_s": RESET_S,
        **overrides,
    }
    return OrdersSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def payments(provider: FakeProvider) -> AsyncIterator[HttpPayments]:
    adapter = HttpPayments(adapter_settings(provider.url))
    yield adapter
    await adapter.close()


async def authorise(
    payments: HttpPayments, key: str = "order-1", method: str = "pm_card_visa"
) -> str:
    return await payments.authorise(
        idempotency_key=key,
        reference=key,
        amount=Decimal("12.34"),
        currency="EUR",
        payment_method=method,
    )


async def test_authorise_capture_refund(payments: HttpPayments, provider: FakeProvider) -> None:
    payment_id = await authorise(payments)
    await payments.capture(idempotency_key="order-1:capture", payment_id=payment_id)

    intent = provider.intents[payment_id]
    assert (intent["amount"], intent["currency"], intent["status"]) == (1234, "eur", "succeeded")
    assert provider.captured() == ["order-1"]

    await payments.refund(idempotency_key="order-1:refund", payment_id=payment_id)

    assert provider.intents[payment_id]["status"] == "refunded"
    assert provider.calls == {"order-1": 1, "order-1:capture": 1, "order-1:refund": 1}


async def test_the_same_key_twice_is_one_charge(
    payments: HttpPayments, provider: FakeProvider
) -> None:
    first = await authorise(payments)
    again = await authorise(payments)

    assert first == again
    assert provider.calls["order-1"] == 2
    assert provider.intents_per_reference == {"order-1": 1}


async def test_a_decline_is_final_not_retried(
    payments: HttpPayments, provider: FakeProvider
) -> None:
    with pytest.raises(PaymentDeclinedError) as declined:
        await authorise(payments, method="pm_card_chargeDeclined")

    assert declined.value.reason == "card_declined"
    assert provider.calls["order-1"] == 1
    assert provider.intents == {}


@pytest.mark.parametrize("failure", [FAIL, DROP, SLOW])
async def test_a_transient_failure_is_retried_with_the_same_key(
    payments: HttpPayments, provider: FakeProvider, failure: str
) -> None:
    provider.behave(failure, failure)

    payment_id = await authorise(payments)

    assert provider.calls["order-1"] == 3
    assert list(provider.intents) == [payment_id]
    assert provider.intents_per_reference == {"order-1": 1}  # a dropped answer did not charge twice


@pytest.mark.parametrize("failure", [FAIL, DROP, SLOW])
async def test_a_failure_past_the_retries_is_unavailable(
    payments: HttpPayments, provider: FakeProvider, failure: str
) -> None:
    provider.behave(default=failure)

    with pytest.raises(PaymentUnavailableError):
        await authorise(payments)

    assert provider.calls["order-1"] == ATTEMPTS


async def test_a_wrong_api_key_is_refused_not_retried(provider: FakeProvider) -> None:
    adapter = HttpPayments(adapter_settings(provider.url, payment_api_key="sk_test_wrong"))
    try:
        with pytest.raises(PaymentDeclinedError) as refused:
            await authorise(adapter)
    finally:
        await adapter.close()

    assert refused.value.reason == "invalid_api_key"
    assert provider.intents == {}


async def test_an_unreachable_provider_is_unavailable() -> None:
    with running_provider() as gone:
        url = gone.url
    adapter = HttpPayments(adapter_settings(url))
    try:
        with pytest.raises(PaymentUnavailableError):
            await authorise(adapter)
    finally:
        await adapter.close()


async def test_the_breaker_opens_fails_fast_and_half_opens_to_probe(
    payments: HttpPayments, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.behave(default=FAIL)
    for n in range(THRESHOLD):
        with pytest.raises(PaymentUnavailableError):
            await authorise(payments, key=f"order-{n}")
        if payments.circuit_state == "opened":
            break
    assert payments.circuit_state == "opened"
    reached = provider.total_calls
    assert reached == THRESHOLD  # counted per attempt: it opened during the retries

    with pytest.raises(PaymentUnavailableError, match="circuit is open"):
        await authorise(payments, key="order-fast")
    assert provider.total_calls == reached  # failed fast: the provider was not called

    provider.behave(default=OK)  # the provider recovers
    with clock_moved_on(RESET_S + 0.1):
        payment_id = await authorise(payments, key="order-probe")

    assert payments.circuit_state == "closed"
    assert payment_id in provider.intents


async def test_declines_do_not_open_the_breaker(
    payments: HttpPayments, provider: FakeProvider
) -> None:
    provider.behave(default=DECLINE)
    for n in range(THRESHOLD + 2):
        with pytest.raises(PaymentDeclinedError):
            await authorise(payments, key=f"declined-{n}")

    assert payments.circuit_state == "closed"
    assert provider.total_calls == THRESHOLD + 2
