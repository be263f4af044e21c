"""What users serves other processes: its facade (`UsersFacade`) and the audit trail (the core
`AuditTrail` port) over HTTP, for the HTTP clients in app/modules/users/client.py, and its public
keys for the services that verify tokens (`RemoteKeys`, app/core/security/keys.py)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from app.core.module import INTERNAL_RESPONSES, internal_prefix
from app.core.security.keys import SigningKeys
from app.modules.users.contracts import Contact
from app.modules.users.dependencies import account_service, audit_log_service, signing_keys
from app.modules.users.schemas import AuditEntryIn, EmailVerificationStatus, JsonWebKeySet
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


@router.get(
    "/jwks.json",
    response_model=JsonWebKeySet,
    summary="The public keys access tokens are signed with, as at GET /api/v1/auth/jwks.json",
    responses=INTERNAL_RESPONSES,
)
async def jwks(keys: Annotated[SigningKeys, Depends(signing_keys)]) -> JsonWebKeySet:
    # Internal, so the other services' plain-HTTP fetch is not redirected to HTTPS.
    return JsonWebKeySet.model_validate(keys.jwks())


@router.put(
    "/audit-entries/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Record an audit entry in the append-only log; the same id again stores nothing more",
    responses=INTERNAL_RESPONSES,
)
async def record_audit_entry(entry_id: UUID, body: AuditEntryIn, audit: Audit) -> Response:
    await audit.record(body.entry(entry_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
