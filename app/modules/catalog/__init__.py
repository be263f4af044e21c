"""Catalog: categories, products, prices and stock."""
