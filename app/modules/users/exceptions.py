from __future__ import annotations

from app.core.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
)


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


class WeakPasswordError(UnprocessableError):
    """The password breaks the policy; each subclass names the rule in its problem type."""

    code = "weak-password"


class PasswordLengthError(WeakPasswordError):
    code = "password-length"

    def __init__(self, minimum: int, maximum: int) -> None:
        super().__init__(f"The password must be {minimum} to {maximum} characters long")


class PasswordTooCommonError(WeakPasswordError):
    code = "password-too-common"

    def __init__(self) -> None:
        super().__init__("This password is among the most common ones; choose another")


class PasswordContainsEmailError(WeakPasswordError):
    code = "password-contains-email"

    def __init__(self) -> None:
        super().__init__("The password must not contain the email address's local part")


class PasswordContainsPersonalInfoError(WeakPasswordError):
    code = "password-contains-personal-info"

    def __init__(self) -> None:
        super().__init__(
            "The password is built on your name, your email or the site's name, with too "
            "little else to guess; add a few unrelated words"
        )


class _GuessablePasswordError(WeakPasswordError):
    """zxcvbn found the password easy to guess; its advice follows the rule."""

    summary = "The password is too easy to guess"

    def __init__(self, advice: str) -> None:
        super().__init__(f"{self.summary}. {advice}".strip())


class RepetitivePasswordError(_GuessablePasswordError):
    code = "password-repetitive"
    summary = "The password repeats characters or words"


class SequencePasswordError(_GuessablePasswordError):
    code = "password-sequence"
    summary = "The password is a sequence (abc, 6543), a date or a year"


class KeyboardPatternPasswordError(_GuessablePasswordError):
    code = "password-keyboard-pattern"
    summary = "The password is a walk along the keyboard"


class PasswordTooGuessableError(_GuessablePasswordError):
    code = "password-too-guessable"


class InvalidRefreshTokenError(UnauthorizedError):
    code = "invalid-refresh-token"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked; log in again")


class WrongPasswordError(ForbiddenError):
    code = "wrong-password"

    def __init__(self) -> None:
        super().__init__("The current password is incorrect")


class LastAdminError(ConflictError):
    code = "last-admin"

    def __init__(self) -> None:
        super().__init__("This would leave no active admin; make another admin first")


class InvalidResetTokenError(DomainError):
    status = 400
    code = "invalid-reset-token"

    def __init__(self) -> None:
        super().__init__("The reset token is invalid, expired or already used; ask for a new one")


class InvalidVerificationTokenError(DomainError):
    status = 400
    code = "invalid-verification-token"

    def __init__(self) -> None:
        super().__init__(
            "The verification token is invalid, expired or already used; sign in and ask "
            "for a new email with POST /api/v1/users/me/verification-email"
        )


class EmailAlreadyVerifiedError(ConflictError):
    code = "email-already-verified"

    def __init__(self) -> None:
        super().__init__("This account's email address is verified already")
