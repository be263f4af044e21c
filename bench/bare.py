"""The baseline: bare Starlette + asyncpg (+ PyJWT) serving the same rows as Keystone.

No middleware, no validation, no cache, no ORM: the floor a Python ASGI service on this
machine cannot go below. `uvicorn bench.bare:app` with DATABASE_URL and JWT_PUBLIC_KEY (the
users module's public key, base64url; default: the development key's) set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import jwt
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.core.security.ed25519 import dev_signing_key, load_public_key

PRODUCT_COLUMNS = "id, sku, name, description, price, currency, stock, category_id, created_at"
PRODUCT = f"SELECT {PRODUCT_COLUMNS} FROM catalog.products WHERE id = $1 AND archived_at IS NULL"  # noqa: S608
FIRST_PAGE = (
    f"SELECT {PRODUCT_COLUMNS} FROM catalog.products WHERE archived_at IS NULL "  # noqa: S608
    "ORDER BY created_at DESC, id DESC LIMIT 21"
)
SEARCH = (
    f"SELECT {PRODUCT_COLUMNS} FROM catalog.products WHERE archived_at IS NULL "  # noqa: S608
    "AND search @@ websearch_to_tsquery('english', $1) ORDER BY created_at DESC, id DESC LIMIT 21"
)
USER = "SELECT id, email, full_name, roles, created_at FROM users.users WHERE id = $1 AND is_active"
PUBLIC_KEY = (
    load_public_key(os.environ["JWT_PUBLIC_KEY"])
    if os.environ.get("JWT_PUBLIC_KEY")
    else dev_signing_key().public_key()
)
pool: asyncpg.Pool | None = None


def _connect_args() -> dict[str, Any]:
    url = make_url(os.environ["DATABASE_URL"])
    host = url.query.get("host") or url.host
    return {
        "host": host,
        "port": int(str(url.query.get("port") or url.port or 5432)),
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


def _json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        key: str(value) if isinstance(value, (UUID,)) or key == "price" else value
        for key, value in row.items()
    } | {"created_at": row["created_at"].isoformat()}


def _page(rows: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "items": [_json(row) for row in rows[:20]],
        "next_cursor": "x" if len(rows) > 20 else None,
    }


def _db() -> asyncpg.Pool:
    assert pool is not None
    return pool


async def product(request: Request) -> JSONResponse:
    row = await _db().fetchrow(PRODUCT, UUID(request.path_params["product_id"]))
    if row is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse(_json(row))


async def listing(request: Request) -> JSONResponse:
    q = request.query_params.get("q")
    rows = await (_db().fetch(SEARCH, q) if q else _db().fetch(FIRST_PAGE))
    return JSONResponse(_page(rows))


async def me(request: Request) -> JSONResponse:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(
            token,
            PUBLIC_KEY,
            algorithms=["EdDSA"],
            audience="keystone-api",
            issuer="keystone",
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
        )
    except jwt.InvalidTokenError:
        return JSONResponse({"detail": "unauthorized"}, status_code=401)
    row = await _db().fetchrow(USER, UUID(claims["sub"]))
    if row is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse({**_json(row), "roles": list(row["roles"])})


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(**_connect_args(), min_size=10, max_size=20)
    yield
    await pool.close()


app = Starlette(
    routes=[
        Route("/api/v1/catalog/products/{product_id}", product),
        Route("/api/v1/catalog/products", listing),
        Route("/api/v1/users/me", me),
    ],
    lifespan=lifespan,
)
