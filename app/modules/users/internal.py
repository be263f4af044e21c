"""What users serves other processes: its facade (`UsersFacade`) and the audit trail (the core
`AuditTrail` port) over HTTP, for the HTTP clients in app/modules/users/client.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from app.core.module import INTERNAL_RESPONSES, internal_prefix
from app.modules.users.contracts import Contact
from app.modules.users.dependencies import account_service, audit_log_service
from app.modules.users.schemas import AuditEntryIn, EmailVerificationStatus
from app.modules.users.service import AccountService, AuditLog

# Bumped with any change a caller could notice (docs/contracts/users/internal-api.json).
API_VERSION = 1
router = APIRouter(prefix=internal_prefix("users"), tags=["users"])
Accounts = Annotated[AccountService, Depends(account_service)]
Audit = Annotated[AuditLog, Depends(audit_log_service)]


@router.get(
    "/contacts/{user_id}",
    response_model=Contact | None,
    summary="Where to write to a person; null when there is nobody (unknown, disabled, erased)",
    responses=INTERNAL_RESPONSES,
)
async def contact(user_id: UUID, accounts: Accounts) -> Contact | None:
    return await accounts.contact(user_id)


@router.get(
    "/email-verifications/{user_id}",
    response_model=EmailVerificationStatus,
    summary="Whether the person proved their email address; false for unknown, disabled, erased",
    responses=INTERNAL_RESPONSES,
)
async def email_verification(user_id: UUID, accounts: Accounts) -> EmailVerificationStatus:
    return EmailVerificationStatus(verified=await accounts.email_verified(user_id))


@router.put(
    "/audit-entries/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Record an audit entry in the append-only log; the same id again stores nothing more",
    responses=INTERNAL_RESPONSES,
)
async def record_audit_entry(entry_id: UUID, body: AuditEntryIn, audit: Audit) -> Response:
    await audit.record(body.entry(entry_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
