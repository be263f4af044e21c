"""The users module's public HTTP routes: `account` (the signed-in user's own account), `auth`
(signing in and out) and `admin`, each declaring its routes on the one `router` of `shared`.

FastAPI tries routes in the order they are declared, so the order of the imports below is the
order of the routes: the account's first, so that the signed-in user's read (`GET /users/me`),
the hot one, is tried before any other.
"""

# isort: off
from app.modules.users.router import account  # noqa: F401 - declares its routes
from app.modules.users.router import auth  # noqa: F401 - declares its routes
from app.modules.users.router import admin  # noqa: F401 - declares its routes

# isort: on
from app.modules.users.router.shared import router

__all__ = ["router"]
