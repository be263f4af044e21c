"""Administration: accounts (`users:manage`) and the audit log (`audit:read`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query

from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, cursor_query
from app.core.security.dependencies import require
from app.core.security.rbac import Permission, Principal, Role
from app.core.validation import Instant
from app.modules.users.dependencies import admin_service, audit_log_service
from app.modules.users.repository import AuditQuery
from app.modules.users.router.shared import INVALID, UNAUTHENTICATED, From, Responses, router
from app.modules.users.schemas import AuditEntryOut, RolesUpdate, UserAdminOut
from app.modules.users.service import AdminService, AuditLog

Admin = Annotated[AdminService, Depends(admin_service)]
Audit = Annotated[AuditLog, Depends(audit_log_service)]
UserManager = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
AuditReader = Depends(require(Permission.AUDIT_READ))

ADMIN_PROBLEMS: Responses = {
    **UNAUTHENTICATED,
    403: {"description": "Needs the users:manage permission"},
    404: {"description": "No such user"},
    409: {"description": "Would leave no active admin"},
    **INVALID,
}


@router.get(
    "/users",
    response_model=Page[UserAdminOut],
    dependencies=[Depends(require(Permission.USERS_MANAGE))],
    tags=["admin"],
    summary="List accounts, newest first, by email fragment or role (cursor pagination)",
    responses={400: {"description": "Invalid cursor"}, **ADMIN_PROBLEMS},
)
async def list_users(
    admin: Admin,
    email: Annotated[str | None, Query(min_length=1, max_length=320)] = None,
    role: Role | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, cursor_query(max_length=500)] = None,
) -> Page[UserAdminOut]:
    page = await admin.list_users(limit, cursor, email, role)
    return Page[UserAdminOut](
        items=[UserAdminOut.of(user) for user in page.items], next_cursor=page.next_cursor
    )


@router.put(
    "/users/{user_id}/roles",
    response_model=UserAdminOut,
    tags=["admin"],
    summary="Replace an account's roles; its sessions end so new tokens carry the new roles",
    responses=ADMIN_PROBLEMS,
)
async def set_roles(
    user_id: UUID, body: RolesUpdate, actor: UserManager, admin: Admin, origin: From
) -> UserAdminOut:
    return UserAdminOut.of(await admin.set_roles(actor, user_id, frozenset(body.roles), origin))


@router.post(
    "/users/{user_id}/disable",
    response_model=UserAdminOut,
    tags=["admin"],
    summary="Disable an account: it cannot log in and its tokens stop working at once",
    responses=ADMIN_PROBLEMS,
)
async def disable_user(
    user_id: UUID, actor: UserManager, admin: Admin, origin: From
) -> UserAdminOut:
    return UserAdminOut.of(await admin.disable(actor, user_id, origin))


@router.get(
    "/admin/audit-log",
    response_model=Page[AuditEntryOut],
    dependencies=[AuditReader],
    tags=["admin"],
    summary="The audit log, newest first, by actor, action and time range (cursor pagination)",
    responses={
        **UNAUTHENTICATED,
        400: {"description": "Invalid cursor"},
        403: {"description": "Needs the audit:read permission"},
        **INVALID,
    },
)
async def audit_log(
    audit: Audit,
    actor: UUID | None = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[Instant | None, Query(description="inclusive")] = None,
    until: Annotated[Instant | None, Query(description="exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, cursor_query(max_length=500)] = None,
) -> Page[AuditEntryOut]:
    query = AuditQuery(actor_id=actor, action=action, since=since, until=until)
    page = await audit.search(limit, cursor, query)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )
