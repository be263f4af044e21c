"""The users module's public HTTP routes: `auth` (signing in and out), `account` (the
signed-in user's own account) and `admin`.

FastAPI tries routes in the order they are declared: the account's routes come first, so the
signed-in user's read (`GET /users/me`), the hot one, is tried before any other.
"""

from fastapi import APIRouter

from app.core.module import API_PREFIX
from app.modules.users.router import account, admin, auth

router = APIRouter(prefix=API_PREFIX)
router.include_router(account.router)
router.include_router(auth.router)
router.include_router(admin.router)
