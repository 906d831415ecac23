"""CORS for chinwag's web client: only the chat origins the operator names, with credentials.

chinwag's page runs on chinwag's origin and calls ``POST /chat_token`` here with this
service's cookie (``fetch(..., {credentials: "include"})``). A browser lets it read the
answer only if the answer names that origin exactly and allows credentials; ``*`` is not
allowed with credentials, and echoing any ``Origin`` back would let every site on the web
fetch identity tokens for whoever is signed in here. So the allowed origins are a fixed
list (``IDENTITY_CHAT_ORIGINS``), matched exactly, scheme and port included.

The preflight is where a cross-origin JSON POST is stopped: the browser sends the real
request only after an ``OPTIONS`` answer that allows it, and an origin not on the list gets
a JSON 403 without any CORS header.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request

from .errors import ApiError

__all__ = ["ChatOrigins", "parse_origins"]

PREFLIGHT_MAX_AGE = 600
"""Seconds a browser may reuse a preflight answer (Chromium caps it at 7200)."""


def parse_origins(value: str) -> frozenset[str]:
    """``IDENTITY_CHAT_ORIGINS``: comma-separated origins such as ``https://chat.example.com``.

    Each must be an origin exactly as a browser sends it (scheme, host, port if not the
    default; no path, no trailing slash), since matching is exact; ``*`` is refused.
    """
    origins = frozenset(o.strip() for o in value.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin == "*" or scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(
                f"IDENTITY_CHAT_ORIGINS: {origin!r} is not an origin like https://chat.example.com"
            )
    return origins


class ChatOrigins:
    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)

    def headers(self, request: Request) -> dict[str, str]:
        """The CORS headers for an answer to ``request``: none unless its origin is allowed.

        ``Vary: Origin`` always, so a cache never hands one origin's answer to another.
        """
        origin = request.headers.get("origin")
        if origin is None or origin not in self.origins:
            return {"vary": "Origin"}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        }

    def preflight(self, request: Request) -> dict[str, str]:
        """The headers of a successful preflight answer; ApiError (403) for anything else."""
        origin = request.headers.get("origin", "")
        if origin not in self.origins:
            raise ApiError(
                403,
                "origin_not_allowed",
                f"Origin {origin or '(none)'} may not call this service from a browser; "
                "add it to IDENTITY_CHAT_ORIGINS.",
                vary="Origin",
            )
        method = request.headers.get("access-control-request-method", "")
        wanted = request.headers.get("access-control-request-headers", "")
        extra = {h.strip().lower() for h in wanted.split(",") if h.strip()} - {"content-type"}
        if method != "POST" or extra:
            raise ApiError(
                403,
                "cors_not_allowed",
                f"Only POST with Content-Type may be sent here; asked for {method or '(none)'}"
                f"{' with ' + ', '.join(sorted(extra)) if extra else ''}.",
                vary="Origin",
            )
        return self.headers(request) | {
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": "Content-Type",
            "access-control-max-age": str(PREFLIGHT_MAX_AGE),
        }
