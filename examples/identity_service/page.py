"""The sign-in page (``GET /``) and its script (``GET /page.js``), so a person can sign in in
a browser before using chinwag's web client.

The page loads nothing from anywhere else and runs no inline script, so its
Content-Security-Policy can forbid everything but this origin's script and ``fetch``: an
injected ``<script>`` or a form pointed elsewhere would not run or submit. It posts JSON
(see ``cookie.require_json``); the access token ends up in an HttpOnly cookie, never in the
page.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["CONTENT_SECURITY_POLICY", "page_routes"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_HERE = Path(__file__).parent


def _static(name: str, media_type: str) -> Route:
    body = (_HERE / name).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=_HEADERS)

    return Route("/" if name == "page.html" else f"/{name}", serve, methods=["GET"])


def page_routes() -> list[Route]:
    return [_static("page.html", "text/html"), _static("page.js", "text/javascript")]
