from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from app.core.audit import AuditEntry, Origin, Outcome
from app.core.security.rbac import Role
from app.core.validation import InputModel, Name
from app.modules.users.password_policy import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


def normalise_email(email: str) -> str:
    """Trimmed, domain lower-cased; the local part keeps its case (RFC 5321)."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def _any_case(word: str) -> str:
    return "".join(f"[{letter.lower()}{letter.upper()}]" for letter in word)


# email-validator refuses addresses at special-use domains (RFC 6761: local, test, ...); the
# document says so, in a pattern (ECMA regexes have no flag for case).
_SPECIAL_USE = "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = rf"^(?![\s\S]*[@.](?:{_SPECIAL_USE})$)[\s\S]+@[\s\S]+$"
Email = Annotated[
    EmailStr,
    Field(max_length=320, json_schema_extra={"pattern": EMAIL_PATTERN}),
    AfterValidator(normalise_email),
]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]


class RegisterRequest(InputModel):
    email: Email
    password: Password
    full_name: Name


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str
    full_name: str
    roles: list[str]
    created_at: datetime
    email_verified: bool


class UserAdminOut(UserOut):
    status: Literal["active", "disabled"]

    @classmethod
    def of(cls, user: Any) -> UserAdminOut:
        status = "active" if user.is_active else "disabled"
        return cls.model_validate({**UserOut.model_validate(user).model_dump(), "status": status})


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


# Refresh and reset tokens are 43 URL-safe characters; the bound only keeps junk out.
OpaqueToken = Annotated[str, Field(min_length=1, max_length=1_000)]


class RefreshRequest(InputModel):
    refresh_token: OpaqueToken


class ProfileUpdate(InputModel):
    full_name: Name


class PasswordChange(InputModel):
    current_password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    new_password: Password


class RolesUpdate(InputModel):
    roles: Annotated[list[Role], Field(min_length=1, max_length=len(Role))]


class EmailVerification(InputModel):
    token: OpaqueToken


class PasswordResetRequest(InputModel):
    email: Email


class PasswordResetConfirm(InputModel):
    token: OpaqueToken
    new_password: Password


class ErasureRequest(InputModel):
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class PersonalDataExport(BaseModel):
    user_id: UUID
    exported_at: datetime
    modules: dict[str, dict[str, Any]]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_id: UUID | None
    action: str
    target: str | None
    outcome: str
    ip: str | None
    request_id: str | None
    detail: dict[str, Any]


class AuditEntryIn(InputModel):
    """An audit entry recorded by another service (`PUT /internal/users/audit-entries/{id}`),
    or handed to the users queue while users could not be reached."""

    occurred_at: AwareDatetime
    action: Annotated[str, Field(min_length=1, max_length=100)]
    outcome: Outcome
    actor_id: UUID | None = None
    target: Annotated[str | None, Field(max_length=400)] = None
    ip: Annotated[str | None, Field(max_length=64)] = None
    request_id: Annotated[str | None, Field(max_length=128)] = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryIn:
        return cls(
            occurred_at=entry.occurred_at,
            action=entry.action,
            outcome=entry.outcome,
            actor_id=entry.actor_id,
            target=entry.target,
            ip=entry.origin.ip,
            request_id=entry.origin.request_id,
            detail=dict(entry.detail),
        )

    def entry(self, entry_id: UUID) -> AuditEntry:
        return AuditEntry(
            action=self.action,
            outcome=self.outcome,
            actor_id=self.actor_id,
            target=self.target,
            origin=Origin(ip=self.ip, request_id=self.request_id),
            detail=self.detail,
            entry_id=entry_id,
            occurred_at=self.occurred_at,
        )


class EmailVerificationStatus(BaseModel):
    """Whether a person proved their email address (users' internal API)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verified: bool


class JsonWebKey(BaseModel):
    """One Ed25519 public key (RFC 8037): `x` is the key, `kid` what tokens name it by."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class JsonWebKeySet(BaseModel):
    """The current signing key first, then those that still verify during a rotation."""

    keys: list[JsonWebKey]
