"""Which ``jwks_url`` chinwag will fetch. Pure: the rule is checked when a URL is registered
and again before every fetch (a redirect is never followed, so no other URL is reached).

- ``https`` only: the set decides whose tokens are believed, so it must not be readable or
  replaceable on the wire.
- No credentials in the URL: they would be stored and shown in clear beside the app.
- The host must be a public address: registering a URL must not let an app key holder make
  chinwag probe the network it runs in. An IP literal outside the public internet
  (private, link-local, loopback, ..., also written as one integer, in hex or short form
  like ``2130706433`` or ``127.1``, which resolvers read as IPv4, or as IPv6 carrying such
  an IPv4) is refused here, by the webhook targets' rule (``core.target_urls``), so the two
  cannot drift apart. A host *name* cannot be judged here (it resolves differently over
  time): the fetcher resolves it before each fetch and connects only to an address
  :func:`~chinwag.core.target_urls.address_allowed` accepts (``server/jwks/fetcher.py``).
- The one exception is development: with ``CHINWAG_ALLOW_INSECURE_JWKS=true`` a loopback
  host (``127.0.0.0/8``, ``::1``, ``localhost``, ``*.localhost``) may be fetched, over
  ``http`` too, so an app's backend on the same laptop can serve its set. Private addresses
  stay refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chinwag.core.errors import InvalidRequest
from chinwag.core.target_urls import (
    address_allowed,
    host_address,
    is_loopback_address,
    is_loopback_name,
)

__all__ = ["MAX_URL_LENGTH", "check_jwks_url"]

MAX_URL_LENGTH = 2048


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, data={"property": "jwks_url"}, status=422)


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
        # A numeric last label that is no IPv4 address (``1.2.3.4.5``, ``0x1g``) is no name
        # either: every resolver would refuse or misread it.
        address = host_address(host)
    except ValueError:
        raise _invalid("The JWKS URL does not parse.") from None
    if parts.scheme not in ("https", "http") or not host:
        raise _invalid("The JWKS URL must be an https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise _invalid("The JWKS URL must not carry credentials.")
    if parts.fragment:
        raise _invalid("The JWKS URL must not have a #fragment.")
    loopback = is_loopback_name(host) or (address is not None and is_loopback_address(address))
    if loopback and allow_insecure:
        return url
    if parts.scheme != "https":
        raise _invalid(
            "The JWKS URL must use https:// (http:// is accepted only for a loopback host "
            "when the server runs with CHINWAG_ALLOW_INSECURE_JWKS=true)."
        )
    if loopback or (address is not None and not address_allowed(address, allow_loopback=False)):
        raise _invalid("The JWKS URL's host must be a public address.")
    return url
