"""Shared infrastructure. Knows no module: modules plug into it through `app.core.module.Module`."""
