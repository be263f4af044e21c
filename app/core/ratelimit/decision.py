"""What a limit answered, and how a request carries the tightest answer to its response."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from app.core.errors import TooManyRequestsError

DECISION_STATE_KEY = "rate_limit"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after_s).encode()),
        ]


def client_ip(scope: Scope) -> str:
    """The peer address, already replaced by X-Forwarded-For's client when the peer is a
    trusted proxy (uvicorn's ProxyHeadersMiddleware, installed from TRUSTED_PROXIES)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def record(scope: Scope, decision: Decision) -> None:
    """Keep the tightest decision of this request for the response headers."""
    state = scope.setdefault("state", {})
    current: Decision | None = state.get(DECISION_STATE_KEY)
    if current is None or (not decision.allowed, -decision.remaining) > (
        not current.allowed,
        -current.remaining,
    ):
        state[DECISION_STATE_KEY] = decision


def too_many(decision: Decision) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"Too many requests; retry in {decision.reset_after_s} s",
        headers={"Retry-After": str(decision.reset_after_s)},
    )
