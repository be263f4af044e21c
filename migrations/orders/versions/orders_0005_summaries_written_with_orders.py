"""order summaries written with each order, brought up to date once

Revision ID: orders_0005
Revises: orders_0004
Create Date: 2026-11-29 17:00:00.000000

From this release the order list's summary is written in the transaction of each order's own
write, no longer by handlers of its events. Orders whose events were still on their way to the
old handlers at the release are brought up to date here; the upsert's version check leaves a
summary alone when it is as new already, so a run of the old release beside the new one during
a rolling deploy cannot move one back.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "orders_0005"
down_revision: str | Sequence[str] | None = "orders_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATCH_UP = """
INSERT INTO orders.order_summaries
    (order_id, customer_id, status, version, total, currency, item_count, placed_at, updated_at)
SELECT o.id, o.customer_id, o.status,
       (SELECT count(*) FROM orders.status_changes c WHERE c.order_id = o.id),
       o.total, o.currency,
       (SELECT coalesce(sum(l.quantity), 0) FROM orders.order_lines l WHERE l.order_id = o.id),
       o.created_at, o.updated_at
FROM orders.orders o
ON CONFLICT (order_id) DO UPDATE
SET status = excluded.status, version = excluded.version, updated_at = excluded.updated_at
WHERE orders.order_summaries.version < excluded.version
"""


def upgrade() -> None:
    op.execute(CATCH_UP)


def downgrade() -> None:
    """Nothing to undo: the summaries are as the old handlers would have left them."""
