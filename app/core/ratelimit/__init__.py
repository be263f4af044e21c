"""Rate limiting backed by Redis, so a limit holds across every instance of the API.

Limits are parsed by the `limits` library ("300/minute"); the counting is a sliding-window counter
in one Lua script that counts and returns what the headers need in a single round trip
(`sliding_window`, ADR 0016). Two layers use it:

- `middleware.RateLimitMiddleware`: every request, per client IP, `RATE_LIMIT_DEFAULT` or the
  route's entry in `RATE_LIMIT_ROUTES`. When Redis cannot answer it fails open: the request goes
  through, the failure is counted (`RateLimiter.storage_failures`) and logged when it starts and
  ends. A client far from its limit is not asked about on every request: after each answer from
  Redis the process may let through a small share of what remains on its own (`leases`), and
  counts those hits into Redis with its next question.
- `auth_limits.auth_rate_limit(account_field)`: a dependency for endpoints that guess at
  credentials (login, register, password reset): per client IP on that route
  (`RATE_LIMIT_AUTH_IP`) and per account named in the body (`RATE_LIMIT_AUTH_ACCOUNT`), so a
  guesser spread over many IPs is still held. When Redis cannot answer these fail closed (503)
  unless `RATE_LIMIT_AUTH_FAIL_CLOSED=false`: an attacker able to knock Redis over must not get
  unlimited password guesses.

Every response that a limit was checked for carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds) of the tightest limit it met; a 429 adds `Retry-After` (`decision`).
`route_check` refuses, at start-up, a `RATE_LIMIT_ROUTES` entry naming no route.
"""
