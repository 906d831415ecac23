"""Which ``jwks_url`` chinwag will fetch. Pure: the rule is checked when a URL is registered
and again before every fetch (a redirect is never followed, so no other URL is reached).

- ``https`` only: the set decides whose tokens are believed, so it must not be readable or
  replaceable on the wire.
- No credentials in the URL: they would be stored and shown in clear beside the app.
- No host that is an IP literal outside the public internet (private, link-local, loopback,
  ...): registering a URL must not let an app key holder make chinwag probe the network it
  runs in. Host *names* are not resolved here; an operator who needs that guarantee for
  names too sets it in the network (egress policy).
- The one exception is development: with ``CHINWAG_ALLOW_INSECURE_JWKS=true`` a loopback
  host (``127.0.0.0/8``, ``::1``, ``localhost``) may be fetched, over ``http`` too, so an
  app's backend on the same laptop can serve its set.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from chinwag.core.errors import InvalidRequest

__all__ = ["MAX_URL_LENGTH", "check_jwks_url", "is_loopback_host"]

MAX_URL_LENGTH = 2048


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, data={"property": "jwks_url"}, status=422)


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_jwks_url(url: object, *, allow_insecure: bool) -> str:
    """The URL if chinwag may fetch it, else ``invalid_request`` (422) saying why."""
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
        raise _invalid(f"The JWKS URL must be 1 to {MAX_URL_LENGTH} characters.")
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise _invalid("The JWKS URL must be printable ASCII without spaces.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _invalid("The JWKS URL does not parse.") from None
    if parts.scheme not in ("https", "http") or not host:
        raise _invalid("The JWKS URL must be an https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise _invalid("The JWKS URL must not carry credentials.")
    if parts.fragment:
        raise _invalid("The JWKS URL must not have a #fragment.")
    loopback = is_loopback_host(host)
    if loopback and allow_insecure:
        return url
    if parts.scheme != "https":
        raise _invalid(
            "The JWKS URL must use https:// (http:// is accepted only for a loopback host "
            "when the server runs with CHINWAG_ALLOW_INSECURE_JWKS=true)."
        )
    literal = _ip_literal(host)
    if loopback or (literal is not None and not literal.is_global):
        raise _invalid("The JWKS URL's host must be a public address.")
    return url
