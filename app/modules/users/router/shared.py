"""What the users routers share: the services and caller they depend on, and the problems
their documents name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from app.core.audit import Origin
from app.core.security.dependencies import current_principal, current_token
from app.core.security.rbac import Principal
from app.core.security.tokens import AccessToken
from app.modules.users.dependencies import account_service, caller_origin, verification_service
from app.modules.users.service import AccountService
from app.modules.users.verification import EmailVerificationService

Accounts = Annotated[AccountService, Depends(account_service)]
Verification = Annotated[EmailVerificationService, Depends(verification_service)]
Caller = Annotated[Principal, Depends(current_principal)]
From = Annotated[Origin, Depends(caller_origin)]
CallerToken = Annotated[AccessToken, Depends(current_token)]

JSON = "application/json"
Responses = dict[int | str, dict[str, Any]]
INVALID: Responses = {422: {"description": "Invalid input (problem+json naming each field)"}}
UNAUTHENTICATED: Responses = {401: {"description": "Missing, invalid, expired or revoked token"}}
WEAK_PASSWORD: Responses = {
    422: {
        "description": "Invalid input, or a password the policy refuses; the problem type "
        "names the rule: password-length, password-too-common, password-contains-email, "
        "password-contains-personal-info, password-repetitive, password-sequence, "
        "password-keyboard-pattern or password-too-guessable"
    }
}
