from __future__ import annotations

from app.core.errors import ConflictError, DomainError, NotFoundError, UnprocessableError
from app.core.pagination import InvalidCursorError


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


class CategoryNotFoundError(NotFoundError):
    code = "category-not-found"

    def __init__(self) -> None:
        super().__init__("No such category")


class UnknownParentCategoryError(UnprocessableError):
    code = "unknown-parent-category"

    def __init__(self) -> None:
        super().__init__("parent_id does not name an existing category")


class CategoryTooDeepError(UnprocessableError):
    code = "category-too-deep"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class CategoryInUseError(ConflictError):
    code = "category-in-use"

    def __init__(self, products: int, children: int) -> None:
        super().__init__(
            f"The category still has {products} product(s) and {children} subcategory(ies); "
            "move them first"
        )


class StockBelowReservedError(ConflictError):
    code = "stock-below-reserved"

    def __init__(self, reserved: int) -> None:
        super().__init__(f"{reserved} unit(s) are reserved by open orders; on_hand cannot be lower")


class CursorSortMismatchError(InvalidCursorError):
    def __init__(self, cursor_sort: str, sort: str) -> None:
        DomainError.__init__(
            self,
            f"The cursor belongs to sort={cursor_sort}, not sort={sort}; "
            "start again without the cursor",
        )
