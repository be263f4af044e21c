from __future__ import annotations

from app.core.errors import ConflictError, NotFoundError, UnauthorizedError


class EmailTakenError(ConflictError):
    code = "email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists")


class InvalidCredentialsError(UnauthorizedError):
    code = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("Incorrect email or password")


class UserNotFoundError(NotFoundError):
    code = "user-not-found"

    def __init__(self) -> None:
        super().__init__("No such user")
