"""The browser's sign-in: the access token in an HttpOnly cookie, and the CSRF rule for it.

A browser signed in through the sign-in page holds the access token only as a cookie:
``HttpOnly`` (no script, not even this service's page, can read it), ``SameSite=Lax``
(not sent on cross-site subrequests), ``Secure`` when the request came over https, no
``Domain`` (this host only) and ``Path`` at the service's mount point (not to other apps on
the same host under other paths).

``SameSite=Lax`` means chinwag's page must be on the same *site* as this service
(``chat.shop.example`` and ``id.shop.example``; or ``localhost`` on two ports) for the
cookie to go with its ``fetch``; browsers block third-party cookies in any case.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError

__all__ = ["COOKIE_NAME", "clear_cookie", "read_cookie", "require_json", "set_cookie"]

COOKIE_NAME = "identity_access"


def _path(request: Request) -> str:
    return str(request.scope.get("root_path") or "") or "/"


def set_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max_age,
        path=_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path=_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def read_cookie(request: Request) -> str | None:
    return request.cookies.get(COOKIE_NAME) or None


def require_json(request: Request) -> None:
    """Refuse a request that uses (or asks for) the cookie unless it is ``application/json``.

    Why: a browser attaches the cookie to whatever request a page makes to this service,
    including one from another site's page. The requests a page can make without asking
    first (a ``<form>`` post, a "simple" ``fetch``) can only be ``text/plain``,
    ``application/x-www-form-urlencoded`` or ``multipart/form-data``; a JSON body makes the
    browser send a CORS preflight, which only ``IDENTITY_CHAT_ORIGINS`` pass. ``SameSite=Lax``
    already keeps the cookie off cross-*site* posts, but not off posts from another origin
    of the same site (a sibling subdomain, another port on localhost): this rule covers
    those. A ``text/plain`` form can carry a body that parses as JSON, so the content type
    is what is checked, not the body. Bearer requests need no such rule: a browser never
    adds an ``Authorization`` header on its own.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "json_required",
            "A request signed in by the cookie must be Content-Type: application/json "
            f"(CSRF protection); got {media_type or 'no content type'}.",
        )
