"""The password policy: 12..128 characters, not a common password, not built on the email.

`common_passwords.txt` holds 19,640 of the most common passwords seen in public breaches (the
list Django ships, itself derived from Royce Williams' compilation of leaked-password
frequency lists). It is read once, on first use, into a set of lower-cased entries.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from app.modules.users.exceptions import (
    PasswordContainsEmailError,
    PasswordLengthError,
    PasswordTooCommonError,
)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
# A local part shorter than this ("al@...") would forbid too many good passphrases.
MIN_LOCAL_PART_CHECKED = 3
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def check_password(password: str, email: str) -> None:
    """Raise the error naming the first rule `password` breaks; return when it passes."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise PasswordLengthError(MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH)
    lowered = password.lower()
    if lowered.strip() in common_passwords():
        raise PasswordTooCommonError
    local_part = email.rpartition("@")[0].lower()
    if len(local_part) >= MIN_LOCAL_PART_CHECKED and local_part in lowered:
        raise PasswordContainsEmailError
