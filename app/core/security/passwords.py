"""Argon2id password hashing (pwdlib), always off the event loop."""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class PasswordHasher:
    """`verify` returns (ok, new_hash): a new hash when the stored one uses outdated parameters."""

    def __init__(self) -> None:
        # OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
        self._hash = PasswordHash((Argon2Hasher(memory_cost=19_456, time_cost=2, parallelism=1),))
        self._dummy = self._hash.hash("keystone-dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        # An unknown account still costs one verification, so timing does not reveal it.
        ok, updated = await asyncio.to_thread(
            self._hash.verify_and_update, password, stored or self._dummy
        )
        return (ok and stored is not None), updated
