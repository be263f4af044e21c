from __future__ import annotations

from typing import cast

from fastapi import Request

from app.modules.users.container import UsersContainer
from app.modules.users.service import AccountService


def account_service(request: Request) -> AccountService:
    container = cast(UsersContainer, request.app.state.containers["users"])
    return container.accounts()
