"""The password policy (NIST SP 800-63B 3.1.1.2): 12..128 characters, not a common password,
not built on the email, the name or the site's name, and not easy to guess (zxcvbn).

`common_passwords.txt` holds 19,640 of the most common passwords seen in public breaches (the
list Django ships, itself derived from Royce Williams' compilation of leaked-password
frequency lists). It is read once, on first use, into a set of lower-cased entries.

The strength estimate is zxcvbn (the `zxcvbn-rs-py` binding of the Rust port; why not the
pure-Python `zxcvbn`: docs/adr/0004-password-strength-estimator.md). It sees repeats,
sequences, keyboard walks, dates, dictionary words and the account's own words, each with
l33t and reversed variants, and estimates the guesses an attacker needs. It scores only the
first `SCORED_LENGTH` characters: its cost grows faster than the length (a 128-character
"1212..." takes ~50 ms, 64 characters ~10 ms), and more characters can only add guesses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from zxcvbn_rs_py import Entropy, Warning, zxcvbn

from app.modules.users.exceptions import (
    KeyboardPatternPasswordError,
    PasswordContainsEmailError,
    PasswordContainsPersonalInfoError,
    PasswordLengthError,
    PasswordTooCommonError,
    PasswordTooGuessableError,
    RepetitivePasswordError,
    SequencePasswordError,
    _GuessablePasswordError,
)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
# zxcvbn's 0..4: 3 is "safely unguessable" (10^8 guesses and more), its authors' advice.
MIN_SCORE = 3
SCORED_LENGTH = 64
# The site's own words, which an attacker of this site tries first.
SITE_WORDS = ("keystone",)
# Shorter words of a name or an email ("al", "ox") would forbid too many good passphrases.
MIN_CONTEXT_WORD = 3
MIN_LOCAL_PART_CHECKED = MIN_CONTEXT_WORD
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# The binding's warnings compare equal but do not hash: pairs, not a dict.
_RULE_OF_WARNING: tuple[tuple[Warning, type[_GuessablePasswordError]], ...] = (
    (Warning.RepeatsLikeAaaAreEasyToGuess, RepetitivePasswordError),
    (Warning.RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess, RepetitivePasswordError),
    (Warning.SequencesLikeAbcAreEasyToGuess, SequencePasswordError),
    (Warning.RecentYearsAreEasyToGuess, SequencePasswordError),
    (Warning.DatesAreOftenEasyToGuess, SequencePasswordError),
    (Warning.StraightRowsOfKeysAreEasyToGuess, KeyboardPatternPasswordError),
    (Warning.ShortKeyboardPatternsAreEasyToGuess, KeyboardPatternPasswordError),
)
_COMMON_WARNINGS = (
    Warning.ThisIsATop10Password,
    Warning.ThisIsATop100Password,
    Warning.ThisIsACommonPassword,
    Warning.ThisIsSimilarToACommonlyUsedPassword,
)
# The usual l33t substitutions, so "Gr4ce" is found as "grace".
_LEET = {"a": "4@", "b": "8", "e": "3", "g": "9", "i": "1!|", "l": "1|", "o": "0", "s": "5$"}
_LEET.update({"t": "7+", "z": "2"})


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def context_words(email: str, full_name: str) -> list[str]:
    """The words of this account and this site an attacker would try first."""
    local, _, domain = email.lower().rpartition("@")
    labels = domain.split(".")[:-1]  # the top-level domain is no clue
    words = [local, *re.split(r"[^\w]+|_", local), *labels, *re.split(r"\W+", full_name.lower())]
    words += SITE_WORDS
    return sorted({word for word in words if len(word) >= MIN_CONTEXT_WORD}, key=len, reverse=True)


def check_password(password: str, email: str, full_name: str = "") -> None:
    """Raise the error naming the first rule `password` breaks; return when it passes."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise PasswordLengthError(MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH)
    lowered = password.lower()
    if lowered.strip() in common_passwords():
        raise PasswordTooCommonError
    local_part = email.rpartition("@")[0].lower()
    if len(local_part) >= MIN_LOCAL_PART_CHECKED and local_part in lowered:
        raise PasswordContainsEmailError
    context = context_words(email, full_name)
    scored = password[:SCORED_LENGTH]
    estimate = zxcvbn(scored, user_inputs=context)
    remainder = _without(scored, context)
    if int(estimate.score) < MIN_SCORE:
        warning = estimate.feedback.warning if estimate.feedback else None
        for pattern, rule in _RULE_OF_WARNING:
            if warning == pattern:
                raise rule(_advice(estimate))
        if remainder != scored:
            raise PasswordContainsPersonalInfoError
        if any(warning == common for common in _COMMON_WARNINGS):
            raise PasswordTooCommonError
        raise PasswordTooGuessableError(_advice(estimate))
    # Built on the account's own words: what is left must hold on its own.
    if remainder != scored and int(zxcvbn(remainder).score) < MIN_SCORE:
        raise PasswordContainsPersonalInfoError


def _without(password: str, words: Iterable[str]) -> str:
    """`password` with every occurrence of `words` cut out, l33t, reversed or any case."""
    for word in words:
        for variant in (word, word[::-1]):
            pattern = "".join(f"[{re.escape(c + _LEET.get(c, ''))}]" for c in variant)
            password = re.sub(pattern, "", password, flags=re.IGNORECASE)
    return password


def _advice(estimate: Entropy) -> str:
    """zxcvbn's own words on what is wrong and what would help."""
    feedback = estimate.feedback
    if feedback is None:
        return ""
    parts = [str(feedback.warning)] if feedback.warning is not None else []
    parts += [str(suggestion) for suggestion in feedback.suggestions]
    return " ".join(parts)
