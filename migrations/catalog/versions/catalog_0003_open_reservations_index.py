"""open reservations by age, for the expiry cron

Revision ID: catalog_0003
Revises: catalog_0002
Create Date: 2026-12-02 10:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "catalog_0003"
down_revision: str | Sequence[str] | None = "catalog_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_reservations_open",
        "reservations",
        ["created_at"],
        unique=False,
        schema="catalog",
        postgresql_where="status = 'reserved'",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(
        "ix_reservations_open",
        table_name="reservations",
        schema="catalog",
        postgresql_where="status = 'reserved'",
    )
