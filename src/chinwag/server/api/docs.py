"""``/docs``: Swagger UI from the ``swagger-ui-bundle-v2`` package's files, never a CDN.

A server on a network without the internet (or behind a strict proxy) still has working
API docs. Swagger UI 5 is needed: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot show.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from chinwag.server.api.assets import PackageAssets

__all__ = ["DOCS_PATH", "docs_router"]

DOCS_PATH = "/docs"
_ASSETS = "/docs/assets"
_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"]


def docs_router(openapi_url: str, title: str) -> APIRouter:
    """Routes for the Swagger UI page and the few files it loads."""
    from swagger_ui_bundle import swagger_ui_path

    assets = PackageAssets(swagger_ui_path, _FILES, headers={})
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon-32x32.png",
        )

    @router.get(_ASSETS + "/{name}")
    async def swagger_asset(request: Request, name: str) -> Response:
        return assets.answer(request, name)

    return router
