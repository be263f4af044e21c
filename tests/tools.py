"""System tools some tests need (Debian packages): found, or the test is skipped with a one-line
reason naming the package. In CI (`CI=true`) a missing tool fails the test instead, since
`.ci/run` installs every package listed in it."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(command: str, package: str) -> str:
    """The path of `command`, or skip (locally) / fail (CI) naming the Debian package."""
    path = shutil.which(command) or _sbin(command)
    if path is not None:
        return path
    reason = f"needs `{command}`: apt-get install {package}"
    if in_ci():
        pytest.fail(f"{reason} (CI must not skip; add it to .ci/run)")
    pytest.skip(reason)


def _sbin(command: str) -> str | None:
    # Debian puts daemons such as nginx in /usr/sbin, which a non-root PATH may lack.
    for folder in ("/usr/sbin", "/sbin"):
        candidate = os.path.join(folder, command)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
