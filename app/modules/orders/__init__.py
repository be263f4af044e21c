"""Orders: checkout and the life of an order."""
