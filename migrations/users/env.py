"""Alembic environment of the users module: its schema, its history, its version table."""

from app.core.migrations import run_module_migrations
from app.modules.users.models import metadata

run_module_migrations("users", metadata)
