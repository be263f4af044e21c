"""What the users routers share: the services and caller they depend on, and the problems
their documents name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.core.audit import Origin
from app.core.module import API_PREFIX
from app.core.security.dependencies import current_principal, current_token
from app.core.security.rbac import Principal
from app.core.security.tokens import AccessToken
from app.modules.users.dependencies import account_service, caller_origin, verification_service
from app.modules.users.service import AccountService
from app.modules.users.verification import EmailVerificationService

# One router for every file of the package, not one each: FastAPI (0.165) matches an included
# router as a nested group, which cost every request through the users routes (and past them, to
# orders' and the probes) 5-20 us more in a measurement.
router = APIRouter(prefix=API_PREFIX)
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
