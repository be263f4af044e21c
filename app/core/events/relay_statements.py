"""The relay's statements on an outbox (`{table}` is its schema-qualified name), each one
statement, atomic by itself, run outside any transaction (app/core/events/relay.py).

CLAIM takes the oldest due rows no live lease holds, skipping rows another relay has locked,
and leaves out a row while an earlier row of its ordering key is undelivered outside the batch.
"""

CLAIM = """
WITH candidates AS (
    SELECT event_id, ordering_key, occurred_at FROM {table}
    WHERE dispatched_at IS NULL AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY occurred_at, event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimable AS (
    SELECT c.event_id FROM candidates c
    WHERE c.ordering_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM {table} e
        WHERE e.ordering_key = c.ordering_key AND e.dispatched_at IS NULL
          AND (e.occurred_at, e.event_id) < (c.occurred_at, c.event_id)
          AND e.event_id NOT IN (SELECT event_id FROM candidates))
)
UPDATE {table} o
SET claimed_by = $2, claimed_until = now() + make_interval(secs => $3)
FROM claimable WHERE o.event_id = claimable.event_id
RETURNING o.event_id, o.event_type, o.event_version, o.payload, o.attempts, o.ordering_key,
          o.occurred_at
"""
DELIVERED = """
UPDATE {table} SET dispatched_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE event_id = ANY($1::uuid[])
"""
RETRY = """
UPDATE {table} o
SET attempts = o.attempts + 1, last_error = f.error, claimed_by = NULL, claimed_until = NULL,
    next_attempt_at = now() + make_interval(secs => f.delay_s)
FROM unnest($1::uuid[], $2::float8[], $3::text[])
    AS f(event_id, delay_s, error)
WHERE o.event_id = f.event_id
"""
RELEASE = """
UPDATE {table} SET claimed_by = NULL, claimed_until = NULL
WHERE event_id = ANY($1::uuid[])
"""
