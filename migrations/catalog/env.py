"""Alembic environment of the catalog module: its schema, its history, its version table."""

from app.core.migrations import run_module_migrations
from app.modules.catalog.models import metadata

run_module_migrations("catalog", metadata)
