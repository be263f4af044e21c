"""Integration events: typed messages, a transactional outbox, a relay and idempotent inboxes."""
