from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from app.core.validation import InputModel, Name
from app.modules.users.password_policy import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


def normalise_email(email: str) -> str:
    """Trimmed, domain lower-cased; the local part keeps its case (RFC 5321)."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(normalise_email)]
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


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int
