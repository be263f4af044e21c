"""The payment port and its adapters: an in-process sandbox and an HTTP client for a
Stripe-like provider. The service knows only the port."""
