"""outbox leases, ordering keys and a NOTIFY at commit (issue #10)

Revision ID: users_0006
Revises: users_0005
Create Date: 2026-11-29 13:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "users_0006"
down_revision: str | Sequence[str] | None = "users_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("ordering_key", sa.String(200)), schema=SCHEMA)
    op.add_column("outbox", sa.Column("claimed_by", sa.String(100)), schema=SCHEMA)
    op.add_column("outbox", sa.Column("claimed_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    # The relay claims oldest first; the oldest undelivered row's age is a metric.
    op.create_index(
        "ix_outbox_undispatched_age",
        "outbox",
        ["occurred_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_undispatched_by_key",
        "outbox",
        ["ordering_key", "occurred_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("dispatched_at IS NULL AND ordering_key IS NOT NULL"),
    )
    # Once per inserting statement, sent by Postgres at commit: relays wake at once.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('keystone_outbox', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        f"CREATE TRIGGER outbox_notify AFTER INSERT ON {SCHEMA}.outbox "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.outbox_notify()"
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER outbox_notify ON {SCHEMA}.outbox")
    op.execute(f"DROP FUNCTION {SCHEMA}.outbox_notify()")
    op.drop_index("ix_outbox_undispatched_by_key", table_name="outbox", schema=SCHEMA)
    op.drop_index("ix_outbox_undispatched_age", table_name="outbox", schema=SCHEMA)
    op.drop_column("outbox", "claimed_until", schema=SCHEMA)
    op.drop_column("outbox", "claimed_by", schema=SCHEMA)
    op.drop_column("outbox", "ordering_key", schema=SCHEMA)
