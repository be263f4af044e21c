from __future__ import annotations

from app.core.errors import ConflictError, NotFoundError, UnprocessableError


class ProductNotFoundError(NotFoundError):
    code = "product-not-found"

    def __init__(self) -> None:
        super().__init__("No such product")


class SkuTakenError(ConflictError):
    code = "sku-taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"A product with SKU '{sku}' already exists")


class UnknownCategoryError(UnprocessableError):
    code = "unknown-category"

    def __init__(self) -> None:
        super().__init__("category_id does not name an existing category")


class CategoryNameTakenError(ConflictError):
    code = "category-name-taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"A category named '{name}' already exists")
