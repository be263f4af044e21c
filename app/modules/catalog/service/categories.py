"""Categories: a tree one level deep that products are filed under."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.events.outbox import UnitOfWork
from app.modules.catalog.contracts import CategoryChanged
from app.modules.catalog.exceptions import (
    CategoryInUseError,
    CategoryNameTakenError,
    CategoryNotFoundError,
    CategoryTooDeepError,
    UnknownParentCategoryError,
)
from app.modules.catalog.models import Category
from app.modules.catalog.repository import CategoryRepository
from app.modules.catalog.schemas import CategoryUpdate


class CategoryService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def create_category(self, name: str, parent_id: UUID | None = None) -> Category:
        category = Category(name=name, parent_id=parent_id)
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                if await categories.by_name(name) is not None:
                    raise CategoryNameTakenError(name)
                if parent_id is not None:
                    await self._check_parent(categories, parent_id)
                await categories.add(category)
                tx.publish(CategoryChanged(category_id=category.id, change="created"))
        except IntegrityError as exc:
            raise CategoryNameTakenError(name) from exc
        return category

    async def update_category(self, category_id: UUID, data: CategoryUpdate) -> Category:
        fields = data.model_dump(exclude_unset=True)
        name = fields.get("name")
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                category = await categories.get_for_update(category_id)
                if category is None:
                    raise CategoryNotFoundError
                if name not in (None, category.name) and await categories.by_name(name):
                    raise CategoryNameTakenError(str(name))
                parent_id = fields.get("parent_id")
                if parent_id not in (None, category.parent_id):
                    await self._check_move(categories, category, parent_id)
                for field, value in fields.items():
                    setattr(category, field, value)
                await categories.flush()
                tx.publish(CategoryChanged(category_id=category.id, change="updated"))
        except IntegrityError as exc:
            raise CategoryNameTakenError(str(name)) from exc
        return category

    async def delete_category(self, category_id: UUID) -> None:
        try:
            async with self._uow.begin() as tx:
                categories = CategoryRepository(tx.session)
                category = await categories.get_for_update(category_id)
                if category is None:
                    raise CategoryNotFoundError
                products = await categories.products_in(category_id)
                children = await categories.children(category_id)
                if products or children:
                    raise CategoryInUseError(products, children)
                await categories.delete(category)
                tx.publish(CategoryChanged(category_id=category_id, change="deleted"))
        except IntegrityError as exc:  # a product or subcategory arrived meanwhile
            raise CategoryInUseError(1, 0) from exc

    @classmethod
    async def _check_move(
        cls, categories: CategoryRepository, category: Category, parent_id: UUID
    ) -> None:
        if parent_id == category.id:
            raise CategoryTooDeepError("A category cannot be its own parent")
        await cls._check_parent(categories, parent_id)
        if await categories.children(category.id):
            raise CategoryTooDeepError("This category has subcategories, so it cannot get a parent")

    @staticmethod
    async def _check_parent(categories: CategoryRepository, parent_id: UUID) -> None:
        parent = await categories.get(parent_id)
        if parent is None:
            raise UnknownParentCategoryError
        if parent.parent_id is not None:
            raise CategoryTooDeepError(
                "The parent is itself a subcategory; categories nest one level deep"
            )

    async def list_categories(self) -> list[Category]:
        async with self._uow.begin() as tx:
            return await CategoryRepository(tx.session).all()
