"""Swagger UI served by the API itself, so that /docs works without the internet (a laptop on a
plane, an air-gapped deploy) and its CSP names no origin but its own.

The assets (Swagger UI's bundle and stylesheet, a favicon) come from the fastapi-offline
package, which ships them as package data; FastAPI's own page builder points at them. The routes
are added after every API route, as FastAPI tries routes in order and the API's are the hot ones.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
ASSETS = files("fastapi_offline") / "static"


def install_docs(app: FastAPI, swagger_ui_parameters: dict[str, Any]) -> None:
    """GET /docs (Swagger UI), its OAuth2 redirect page, and the assets under /docs/assets."""
    assert app.openapi_url is not None

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=swagger_ui_parameters,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET"], include_in_schema=False
    )
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS)), name="docs-assets")
