"""Where chinwag may POST to: webhook endpoints and push gateways an app registers.

HTTPS only, so deliveries (which may carry message bodies) are not readable on the way;
plain HTTP is allowed only to a loopback host and only when the server runs with its
development flag, for a receiver on the developer's own machine. Credentials in the URL
(``https://user:pass@…``) are refused: they would be stored and shown back in listings.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["MAX_URL_LENGTH", "url_problem"]

MAX_URL_LENGTH = 2048


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, *, allow_loopback_http: bool) -> str | None:
    """Why ``url`` cannot be a delivery target, or None when it can."""
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
        return f"expected a URL of at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed"
    if not host:
        return "the URL has no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(host):
        if allow_loopback_http:
            return None
        return "http is allowed only on loopback with the server's development flag"
    return "expected an https URL"
