"""Roles and the permissions they grant: the one table in code that says who may do what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"


class Permission(StrEnum):
    CATALOG_WRITE = "catalog:write"
    ORDERS_PLACE = "orders:place"
    ORDERS_READ_ANY = "orders:read_any"
    ORDERS_SHIP = "orders:ship"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CUSTOMER: frozenset({Permission.ORDERS_PLACE}),
    Role.STAFF: frozenset(
        {
            Permission.ORDERS_PLACE,
            Permission.CATALOG_WRITE,
            Permission.ORDERS_READ_ANY,
            Permission.ORDERS_SHIP,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the access token says."""

    user_id: UUID
    roles: frozenset[Role]

    @property
    def permissions(self) -> frozenset[Permission]:
        return frozenset().union(*(ROLE_PERMISSIONS[role] for role in self.roles))

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
