"""Alembic environment of the orders module: its schema, its history, its version table."""

from app.core.migrations import run_module_migrations
from app.modules.orders.models import metadata

run_module_migrations("orders", metadata)
