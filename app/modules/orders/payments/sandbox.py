"""A stand-in for a provider's test mode, for dev runs: no network, no account.

`pm_card_visa` approves, `pm_card_chargeDeclined` declines, `pm_card_slow` approves after
`slow_s`; any other token is declined as unknown. It keeps its state where every API and worker
process sees it and a crash does not lose it, as a provider would: in Redis, under
`sandbox-payments:` (why Redis and not a table: docs/adr/0006-sandbox-payments-in-redis.md).

- Each payment is a hash: reference, amount in minor units, currency, payment method and status
  (`requires_capture` -> `succeeded` -> `refunded`, or `requires_capture` -> `canceled` when a
  hold is dropped; `declined` for a refused authorisation), with the time of each step.
- Each idempotency key keeps its first answer for `ANSWER_TTL_S` (a day, as at Stripe): a call
  repeated with the key, after a timeout or a crash, replays that answer (the same payment id)
  instead of acting again, whichever process asks; reusing a key for another request is refused.
- Capturing or refunding an unknown payment, or one whose state does not allow it, is refused
  with the provider's error code, and the refusal is replayed like any answer.

One Lua script per call checks the key, applies the change and stores the answer atomically,
so concurrent repeats (two workers, a redrive racing a retry) see one outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import uuid4

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.modules.orders.payments.port import (
    PaymentDeclinedError,
    PaymentUnavailableError,
    minor_units,
)

APPROVE = "pm_card_visa"
DECLINE = "pm_card_chargeDeclined"
SLOW = "pm_card_slow"
PREFIX = "sandbox-payments:"
PAYMENTS_INDEX = f"{PREFIX}index"
ANSWER_TTL_S = 86_400

# KEYS: answer key, payment key, index. ARGV: request fingerprint, then per operation below.
# Returns the stored answer (JSON), the new one or the replayed one.
_PREAMBLE = """
local seen = redis.call('GET', KEYS[1])
if seen then
  local answer = cjson.decode(seen)
  if answer.fingerprint ~= ARGV[1] then
    return cjson.encode({error = 'idempotency_key_reused'})
  end
  return seen
end
local function answer(result)
  result.fingerprint = ARGV[1]
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[1], encoded, 'EX', tonumber(ARGV[2]))
  return encoded
end
"""
# ARGV[3]: payment id, ARGV[4]: status (requires_capture or declined), ARGV[5]: the time as a
# sort score, ARGV[6..]: the field/value pairs of the new payment.
_AUTHORISE = (
    _PREAMBLE
    + """
local fields = {'id', ARGV[3], 'status', ARGV[4]}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
if ARGV[4] == 'declined' then
  return answer({payment_id = ARGV[3], error = redis.call('HGET', KEYS[2], 'decline_code')})
end
return answer({payment_id = ARGV[3]})
"""
)
# ARGV[3]: now, ARGV[4]: the transitions allowed, "from>to>field stamped" separated by ',',
# ARGV[5]: the error when the payment was given back already.
_TRANSITION = (
    _PREAMBLE
    + """
local status = redis.call('HGET', KEYS[2], 'status')
if not status then return answer({error = 'resource_missing'}) end
for rule in string.gmatch(ARGV[4], '[^,]+') do
  local from, to, stamp = string.match(rule, '([^>]+)>([^>]+)>([^>]+)')
  if status == from then
    redis.call('HSET', KEYS[2], 'status', to, stamp, ARGV[3])
    return answer({status = to})
  end
end
if status == 'canceled' or status == 'refunded' then return answer({error = ARGV[5]}) end
return answer({error = 'payment_intent_unexpected_state'})
"""
)
_CAPTURE = "requires_capture>succeeded>captured_at"
_REFUND = "requires_capture>canceled>canceled_at,succeeded>refunded>refunded_at"


class SandboxPayments:
    circuit_state = "closed"  # nothing remote to trip over: the circuit never opens

    def __init__(self, redis: Callable[[], Redis], slow_s: float) -> None:
        """`redis`: called at first use, so commands that never pay need no Redis."""
        self._redis = redis
        self._slow_s = slow_s

    async def authorise(
        self,
        *,
        idempotency_key: str,
        reference: str,
        amount: Decimal,
        currency: str,
        payment_method: str,
    ) -> str:
        request = ("authorise", reference, minor_units(amount), currency, payment_method)
        answer = await self._replayed(idempotency_key, request)
        if answer is None:
            decline = await self._decide(payment_method)
            payment_id = f"pi_sandbox_{uuid4().hex}"
            status = "declined" if decline else "requires_capture"
            fields = [
                *("reference", reference, "amount", str(minor_units(amount))),
                *("currency", currency.upper(), "payment_method", payment_method),
                *("idempotency_key", idempotency_key, "created_at", _now()),
                *(("decline_code", decline) if decline else ()),
            ]
            answer = await self._run(
                _AUTHORISE,
                idempotency_key,
                payment_id,
                request,
                [payment_id, status, str(time.time()), *fields],
            )
        _raise_refusal(answer)
        return str(answer["payment_id"])

    async def capture(self, *, idempotency_key: str, payment_id: str) -> None:
        request = ("capture", payment_id)
        answer = await self._run(
            _TRANSITION,
            idempotency_key,
            payment_id,
            request,
            [_now(), _CAPTURE, "payment_intent_unexpected_state"],
        )
        _raise_refusal(answer)

    async def refund(self, *, idempotency_key: str, payment_id: str) -> None:
        """A captured payment is refunded; a hold not captured yet is dropped (`canceled`)."""
        request = ("refund", payment_id)
        answer = await self._run(
            _TRANSITION,
            idempotency_key,
            payment_id,
            request,
            [_now(), _REFUND, "charge_already_refunded"],
        )
        _raise_refusal(answer)

    async def payments(self, limit: int, reference: str | None = None) -> list[dict[str, Any]]:
        """What the sandbox holds, newest first (`python -m app.cli payments`)."""
        redis = self._redis()
        try:
            ids = await redis.zrevrange(PAYMENTS_INDEX, 0, -1 if reference else limit - 1)
            records = [
                await cast(Awaitable[dict[Any, Any]], redis.hgetall(_payment_key(_text(pid))))
                for pid in ids
            ]
        except RedisError as exc:
            raise PaymentUnavailableError(f"sandbox state unavailable: {exc!r}") from exc
        payments = [_decoded(record) for record in records if record]
        if reference is not None:
            payments = [p for p in payments if p["reference"] == reference]
        return payments[:limit]

    async def close(self) -> None:
        return None

    async def _decide(self, payment_method: str) -> str | None:
        """The decline code for `payment_method`, or None when it approves."""
        if payment_method == SLOW:
            await asyncio.sleep(self._slow_s)
        elif payment_method == DECLINE:
            return "card_declined"
        elif payment_method != APPROVE:
            return "unknown_payment_method"
        return None

    async def _replayed(self, key: str, request: tuple[Any, ...]) -> dict[str, Any] | None:
        """The answer already given for `key`, before doing slow work for nothing."""
        try:
            seen = await self._redis().get(_answer_key(key))
        except RedisError as exc:
            raise PaymentUnavailableError(f"sandbox state unavailable: {exc!r}") from exc
        if seen is None:
            return None
        answer: dict[str, Any] = json.loads(seen)
        if answer["fingerprint"] != _fingerprint(request):
            return {"error": "idempotency_key_reused"}
        return answer

    async def _run(
        self,
        script: str,
        key: str,
        payment_id: str,
        request: tuple[Any, ...],
        arguments: list[str],
    ) -> dict[str, Any]:
        keys = [_answer_key(key), _payment_key(payment_id), PAYMENTS_INDEX]
        argv = [_fingerprint(request), str(ANSWER_TTL_S), *arguments]
        try:
            raw = await cast(Awaitable[str], self._redis().eval(script, len(keys), *keys, *argv))
        except RedisError as exc:
            raise PaymentUnavailableError(f"sandbox state unavailable: {exc!r}") from exc
        answer: dict[str, Any] = json.loads(raw)
        return answer


def _raise_refusal(answer: dict[str, Any]) -> None:
    if "error" in answer:
        raise PaymentDeclinedError(str(answer["error"]))


def _fingerprint(request: tuple[Any, ...]) -> str:
    return hashlib.sha256(json.dumps(request).encode()).hexdigest()


def _answer_key(idempotency_key: str) -> str:
    return f"{PREFIX}answer:{idempotency_key}"


def _payment_key(payment_id: str) -> str:
    return f"{PREFIX}payment:{payment_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decoded(record: dict[Any, Any]) -> dict[str, Any]:
    payment = {_text(field): _text(value) for field, value in record.items()}
    return {**payment, "amount": int(payment["amount"])}
