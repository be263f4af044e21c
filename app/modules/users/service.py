"""Use cases of the users module: register, log in, read one's account."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from app.core.events.outbox import UnitOfWork
from app.core.security.passwords import PasswordHasher
from app.core.security.rbac import Role
from app.core.security.tokens import TokenService
from app.modules.users.contracts import UserRegistered
from app.modules.users.exceptions import EmailTakenError, InvalidCredentialsError, UserNotFoundError
from app.modules.users.models import User
from app.modules.users.password_policy import check_password
from app.modules.users.repository import UserRepository


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class AccountService:
    def __init__(self, uow: UnitOfWork, passwords: PasswordHasher, tokens: TokenService) -> None:
        self._uow = uow
        self._passwords = passwords
        self._tokens = tokens

    async def register(
        self, email: str, password: str, full_name: str, roles: frozenset[Role] = frozenset()
    ) -> User:
        check_password(password, email)
        password_hash = await self._passwords.hash(password)
        user = User(
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            roles=sorted(roles or {Role.CUSTOMER}),
        )
        try:
            async with self._uow.begin() as tx:
                users = UserRepository(tx.session)
                if await users.by_email(email) is not None:
                    raise EmailTakenError
                await users.add(user)
                tx.publish(UserRegistered(user_id=user.id, email=user.email))
        except IntegrityError as exc:  # a concurrent registration won the race
            raise EmailTakenError from exc
        return user

    async def log_in(self, email: str, password: str) -> IssuedToken:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).by_email(email)
        stored = user.password_hash if user is not None and user.is_active else None
        ok, rehashed = await self._passwords.verify(password, stored)
        if not ok or user is None:
            raise InvalidCredentialsError
        if rehashed is not None:
            async with self._uow.begin() as tx:
                current = await UserRepository(tx.session).get(user.id)
                if current is not None:
                    current.password_hash = rehashed
        token = self._tokens.issue_access_token(user.id, frozenset(Role(r) for r in user.roles))
        return IssuedToken(access_token=token, expires_in=int(self._tokens.ttl.total_seconds()))

    async def get(self, user_id: UUID) -> User:
        async with self._uow.begin() as tx:
            user = await UserRepository(tx.session).get(user_id)
        if user is None or not user.is_active:
            raise UserNotFoundError
        return user
