"""email verification

Revision ID: users_0004
Revises: users_0003
Create Date: 2026-12-02 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "users_0004"
down_revision: str | Sequence[str] | None = "users_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True),
        schema="users",
    )
    # Accounts made before verification existed have been in use: they count as verified, or
    # they could no longer order and the retention sweep would delete them.
    op.execute("UPDATE users.users SET email_verified_at = now()")
    op.create_index(
        "ix_users_unverified_created_at",
        "users",
        ["created_at"],
        unique=False,
        schema="users",
        postgresql_where=sa.text("email_verified_at IS NULL"),
    )
    op.create_table(
        "email_verification_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_verification_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_email_verification_tokens_token_digest")),
        schema="users",
    )
    op.create_index(
        op.f("ix_users_email_verification_tokens_user_id"),
        "email_verification_tokens",
        ["user_id"],
        unique=False,
        schema="users",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_users_email_verification_tokens_user_id"),
        table_name="email_verification_tokens",
        schema="users",
    )
    op.drop_table("email_verification_tokens", schema="users")
    op.drop_index("ix_users_unverified_created_at", table_name="users", schema="users")
    op.drop_column("users", "email_verified_at", schema="users")
