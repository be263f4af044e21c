"""Feature flags through OpenFeature, with flagd's provider: flags from a flagd flag file read in
process (FEATURE_FLAGS_FILE; no server to run, the file is re-read when it changes), or synced
from a flagd server and evaluated in process (FLAGD_HOST); with neither, every flag is off.

Flags guarding real behaviour:
- `writes-paused`: a maintenance switch; while on, every write to the public API (any method
  but GET, HEAD, OPTIONS) answers 503 problem+json `writes-paused` with `Retry-After`, reads go
  on. Evaluated per write with the caller's address as targeting context, so a rule may exempt
  an operator's network.
- `checkout-stock-precheck` (orders): a checkout asking for more than the catalog has on sale is
  refused at once (409 `out-of-stock`) instead of making an order the reservation rejects a
  moment later. Evaluated per checkout with the customer's user id as targeting key, so a
  `fractional` rule rolls it out to a share of customers, each keeping their variant.

Each evaluation is counted per flag and value (`keystone_feature_flag_evaluations_total`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import problem
from app.core.metrics import Reading, ScrapedMetric

WRITES_PAUSED = "writes-paused"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_API = "/api/"
WRITES_PAUSED_RETRY_S = "60"


class FeatureFlags:
    """This process's flags: one OpenFeature domain of its own (OpenFeature's registry is
    process-wide, and tests build many apps in one process)."""

    def __init__(self, settings: Settings) -> None:
        self._provider = _provider(settings)
        domain = f"keystone-{uuid.uuid4().hex}"
        if self._provider is not None:
            api.set_provider(self._provider, domain)
        self._client = api.get_client(domain)
        self.evaluations: Counter[tuple[str, bool]] = Counter()

    def enabled(self, flag: str, targeting_key: str | None = None, **attributes: str) -> bool:
        context = EvaluationContext(targeting_key, dict(attributes))
        value = self._client.get_boolean_value(flag, False, context)
        self.evaluations[(flag, value)] += 1
        return value

    def metrics(self) -> list[ScrapedMetric]:
        async def evaluations() -> Sequence[Reading]:
            return [
                (count, {"flag": flag, "value": str(value).lower()})
                for (flag, value), count in list(self.evaluations.items())
            ]

        return [
            ScrapedMetric(
                "keystone.feature_flag.evaluations",
                "Feature flag evaluations, per flag and value",
                "{evaluation}",
                evaluations,
                counter=True,
            )
        ]

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def feature_flags(request: Request) -> FeatureFlags:
    """FastAPI dependency: the app's flags, for a route that evaluates one with its caller."""
    flags: FeatureFlags = request.app.state.flags
    return flags


def _provider(settings: Settings) -> FlagdProvider | None:
    if settings.feature_flags_file is not None:
        return FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=settings.feature_flags_file
        )
    if settings.flagd_host is not None:
        return FlagdProvider(
            resolver_type=ResolverType.IN_PROCESS,
            host=settings.flagd_host,
            port=settings.flagd_port,
        )
    return None


class WritesPausedGuard:
    """Pure ASGI: while `writes-paused` is on, writes to the public API are refused (503).

    Not the internal endpoints: a peer's write there (an audit entry) is the rest of a write
    already made, which the monolith finishes in process whatever the switch says. Refused,
    it would be queued and retried for the whole pause, and the 503s would open the caller's
    circuit breaker to this service, failing its reads here too (docs/split-topology.md, "What
    the middleware does to an internal call").
    """

    def __init__(self, app: ASGIApp, *, flags: FeatureFlags) -> None:
        self.app = app
        self.flags = flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in READ_METHODS
            and scope["path"].startswith(PUBLIC_API)
        ):
            client = scope.get("client")
            address = client[0] if client else "unknown"
            if self.flags.enabled(WRITES_PAUSED, address, client_address=address):
                response = problem(
                    Request(scope),
                    503,
                    "Writes are paused for maintenance; reads still work. Try again later.",
                    code=WRITES_PAUSED,
                    headers={"Retry-After": WRITES_PAUSED_RETRY_S},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
