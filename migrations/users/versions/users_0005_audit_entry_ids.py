"""audit entry ids: an entry recorded twice (a retried call from another service) is stored once

Revision ID: users_0005
Revises: users_0004
Create Date: 2026-11-29 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "users_0005"
down_revision: str | Sequence[str] | None = "users_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Nullable: rows written before this revision have no id (NULLs never conflict).
    op.add_column("audit_log", sa.Column("entry_id", sa.Uuid(), nullable=True), schema="users")
    op.create_index("ux_audit_log_entry_id", "audit_log", ["entry_id"], unique=True, schema="users")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ux_audit_log_entry_id", table_name="audit_log", schema="users")
    op.drop_column("audit_log", "entry_id", schema="users")
