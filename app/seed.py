"""Demo data: three accounts (admin, staff, customer), a few categories and products.

Idempotent: what exists already is left alone, so `make run` can seed on every start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from app.core.security.rbac import Role
from app.modules.catalog.schemas import ProductCreate
from app.modules.users.exceptions import EmailTakenError, WeakPasswordError
from app.runtime import Runtime

DEFAULT_ADMIN_EMAIL = "admin@keystone.local"
DEFAULT_ADMIN_PASSWORD = "ada-roasts-coffee"  # noqa: S105 - demo data, printed at start


class DemoDataError(Exception):
    """A demo account the operator configured cannot be made; the message says which setting
    to change, in one line."""

    prefix = "cannot seed the demo data: "

    def __init__(self, reason: str) -> None:
        super().__init__(self.prefix + reason)


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    full_name: str
    role: Role
    # The environment variable the password came from, if an operator chose it.
    password_variable: str | None = None


def demo_accounts() -> list[DemoAccount]:
    return [
        DemoAccount(
            os.environ.get("SEED_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL),
            os.environ.get("SEED_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD),
            "Ada Admin",
            Role.ADMIN,
            "SEED_ADMIN_PASSWORD" if "SEED_ADMIN_PASSWORD" in os.environ else None,
        ),
        DemoAccount("staff@keystone.local", "sam-grinds-beans", "Sam Staff", Role.STAFF),
        DemoAccount("customer@keystone.local", "cleo-pours-v60", "Cleo Customer", Role.CUSTOMER),
    ]


CATEGORIES = ("Coffee", "Brewing gear", "Books")
PRODUCTS = (
    (
        "COF-ETH-250",
        "Ethiopia Yirgacheffe 250 g",
        "Coffee",
        "Floral, bergamot, lemon.",
        "12.50",
        120,
    ),
    ("COF-COL-250", "Colombia Huila 250 g", "Coffee", "Caramel, red apple.", "11.00", 80),
    ("COF-DEC-250", "Decaf Swiss Water 250 g", "Coffee", "Cocoa, hazelnut.", "10.50", 3),
    ("GEAR-V60", "Pour-over dripper V60", "Brewing gear", "Ceramic, size 02.", "24.00", 25),
    ("GEAR-GRIND", "Hand grinder", "Brewing gear", "Conical steel burrs.", "89.00", 1),
    ("BOOK-WCA", "The World Atlas of Coffee", "Books", "Hoffmann, 2nd edition.", "35.00", 10),
)


async def seed(runtime: Runtime) -> list[DemoAccount]:
    accounts = demo_accounts()
    users = runtime.module("users").container.accounts()
    for account in accounts:
        try:
            # Demo accounts are verified: an operator vouches for them.
            await users.register(
                account.email,
                account.password,
                account.full_name,
                frozenset({account.role}),
                email_verified=True,
            )
        except EmailTakenError:
            continue
        except WeakPasswordError as weak:
            source = account.password_variable or f"the password of {account.email}"
            raise DemoDataError(
                f"{source} breaks the password rule {weak.code}: {weak.detail}"
            ) from None

    catalog = runtime.module("catalog").container
    categories = {c.name: c.id for c in await catalog.categories().list_categories()}
    for name in CATEGORIES:
        if name not in categories:
            categories[name] = (await catalog.categories().create_category(name)).id
    products = catalog.products()
    for sku, name, category, description, price, stock in PRODUCTS:
        if await products.find_by_sku(sku) is None:
            await products.create_product(
                ProductCreate(
                    sku=sku,
                    name=name,
                    description=description,
                    price=Decimal(price),
                    currency="EUR",
                    stock=stock,
                    category_id=categories[category],
                )
            )
    return accounts
