"""The web client: ``GET /`` is its page, ``GET /console`` the developer console's (for
an API key's holder: apps, keys, sessions, webhooks), ``/web/<file>`` their scripts and style.

The files live in the ``chinwag.web`` package folder and are served as they are (no build
step). The page is locked down with a Content-Security-Policy: scripts and styles only from
this server, no inline script, no plugins, no framing. ``connect-src`` also allows https
origins and local http ones, because a production app signs in through its own identity
service (a URL the person types), which the page calls with ``fetch``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from starlette.responses import Response

from chinwag.server.api.assets import PackageAssets

__all__ = ["CONTENT_SECURITY_POLICY", "WEB_FILES", "web_router"]

WEB_FILES = [
    "index.html",
    "chinwag.js",
    "app.js",
    "style.css",
    "console.html",
    "console.js",
    "console-dom.js",
    "console-keys.js",
    "console-sessions.js",
    "console-webhooks.js",
    "platform.js",
]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' https: http://localhost:* http://127.0.0.1:*",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def web_router() -> APIRouter:
    assets = PackageAssets(files("chinwag.web"), WEB_FILES, headers=_HEADERS)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page(request: Request) -> Response:
        return assets.answer(request, "index.html")

    @router.get("/console")
    async def console(request: Request) -> Response:
        """The developer console: one page, same CSP; it talks to /v1/platform/ only."""
        return assets.answer(request, "console.html")

    @router.get("/web/{name}")
    async def web_file(request: Request, name: str) -> Response:
        return assets.answer(request, name)

    return router
