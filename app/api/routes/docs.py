"""The API's interactive docs, served offline: Swagger UI at /docs, ReDoc at /redoc.

Their JavaScript and CSS come from the ``fastapi-offline`` package (the Swagger UI and ReDoc dist
files), mounted at /docs/assets, so the pages work with no network; FastAPI's defaults load them from
a CDN. With an API key set they need it like every route (see ``app.api.security``). A browser that
opens ``/docs?api_key=KEY`` is redirected to ``/docs`` with the key in an HttpOnly cookie, which the
page's own requests (the schema, the assets) then carry, and the key leaves the address bar.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.api.security import KEY_COOKIE, KEY_QUERY

logger = logging.getLogger(__name__)

ASSETS = "/docs/assets"


def assets_dir() -> Path | None:
    """The folder of Swagger UI and ReDoc files that ``fastapi-offline`` ships (None when missing)."""
    spec = importlib.util.find_spec("fastapi_offline")  # found, not imported: only its files are used
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to ``app`` (whose ``openapi_url`` is set)."""
    folder = assets_dir()
    if folder is None:
        logger.warning("fastapi-offline is missing: no /docs or /redoc (pip install 'mmsearch[server]')")
        return
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return _key_to_cookie(request) or get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return _key_to_cookie(request) or get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _key_to_cookie(request: Request) -> Response | None:
    """A redirect that drops ``?api_key=`` from the address and keeps the key in a cookie (the guard
    has already checked it); None when the request has no such parameter or the server no key."""
    key = request.query_params.get(KEY_QUERY)
    if not key or request.app.state.settings.api_key is None:
        return None
    rest = request.url.remove_query_params(KEY_QUERY)
    # A relative target: the Host header is the client's to choose, so never redirect to it.
    response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), status_code=303)
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", path="/")
    return response
