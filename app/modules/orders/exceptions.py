from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

from app.core.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
)


class OrderNotFoundError(NotFoundError):
    code = "order-not-found"

    def __init__(self) -> None:
        super().__init__("No such order")


class UnknownProductsError(UnprocessableError):
    code = "unknown-products"

    def __init__(self, product_ids: Sequence[UUID]) -> None:
        listed = ", ".join(sorted(str(p) for p in product_ids))
        super().__init__(f"These products cannot be ordered: {listed}")


class DuplicateOrderLinesError(UnprocessableError):
    code = "duplicate-order-lines"

    def __init__(self) -> None:
        super().__init__("Each product may appear once in items; raise its quantity instead")


class OutOfStockError(ConflictError):
    code = "out-of-stock"

    def __init__(self, product_ids: Sequence[UUID]) -> None:
        listed = ", ".join(sorted(str(p) for p in product_ids))
        super().__init__(f"Not enough stock for these products: {listed}; lower the quantities")


class MixedCurrenciesError(UnprocessableError):
    code = "mixed-currencies"

    def __init__(self) -> None:
        super().__init__("All items of one order must be priced in the same currency")


class OrderTotalTooLargeError(UnprocessableError):
    code = "order-total-too-large"

    def __init__(self, limit: Decimal) -> None:
        super().__init__(f"An order's total must stay below {limit}; split it into several orders")


class IllegalTransitionError(ConflictError):
    code = "illegal-transition"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"The order is '{current}' and cannot become '{target}'")


class IdempotencyKeyMissingError(DomainError):
    status = 400
    code = "idempotency-key-required"

    def __init__(self) -> None:
        super().__init__(
            "Send an Idempotency-Key header (a unique value per checkout, e.g. a UUID) so a "
            "retried request cannot place the order twice"
        )


class InvalidIdempotencyKeyError(DomainError):
    status = 400
    code = "invalid-idempotency-key"

    def __init__(self, max_length: int) -> None:
        super().__init__(
            f"The Idempotency-Key must be 1 to {max_length} characters of A-Z, a-z, 0-9 and ._:-"
        )


class IdempotencyKeyReusedError(UnprocessableError):
    code = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new order"
        )


class EmailNotVerifiedError(ForbiddenError):
    code = "email-not-verified"

    def __init__(self) -> None:
        super().__init__(
            "Verify your email address before placing an order: open the link we emailed you "
            "when you registered, or ask for a new one with POST "
            "/api/v1/users/me/verification-email"
        )
