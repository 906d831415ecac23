"""Where chinwag may POST to: webhook endpoints and push gateways an app registers.

The same rule as an app's ``jwks_url`` (``core.jwks_url``), because the same person (an
app key holder) chooses the URL and the server, inside the operator's network, connects:

- HTTPS only, so deliveries (which may carry message bodies) are not readable on the way.
- No credentials in the URL (``https://user:pass@…``): they would be stored and shown back
  in listings. No ``#fragment`` and no control characters or spaces: a fragment is never
  sent, and a CR/LF stored in a URL would end up in the request line of every delivery.
- The host must be a public address: an IP literal outside the public internet (private,
  loopback, link-local, unique-local, ``0.0.0.0``, and the same written as one integer,
  hex or short forms like ``2130706433`` or ``127.1``, which resolvers accept) is refused
  here, and a host *name* is resolved at each delivery and every address it gives is held
  to :func:`address_allowed` before connecting (``server/target_addresses.py``). Otherwise
  an app could make chinwag probe the network it runs in, reading ports' answers back from
  the deliveries list.
- The one exception is development: with ``CHINWAG_DEV_ALLOW_HTTP_LOOPBACK=true`` a
  loopback host (``127.0.0.0/8``, ``::1``, ``localhost``) is allowed, over plain http too,
  for a receiver on the developer's own machine. Private addresses stay refused.

Pure: nothing here resolves names.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "address_allowed",
    "host_address",
    "is_loopback_address",
    "is_loopback_name",
    "url_problem",
]

MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_address(host: str) -> Address | None:
    """The IP address a URL host denotes by itself (no DNS), else None for a name.

    Besides dotted quads and IPv6, a host whose last label is a number is read the way
    ``inet_aton`` (and so every resolver) reads it: ``2130706433``, ``0x7f.1`` and
    ``127.1`` are all 127.0.0.1. Such a host that is not a valid address raises ValueError
    (no DNS name ends in a numeric label)."""
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last = host.rsplit(".", 1)[-1].lower()
    if last and (last.isdigit() or (last.startswith("0x") and _is_hex(last[2:]))):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise ValueError(f"not an IPv4 address: {host!r}") from None
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _embedded_v4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and routes to (mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def address_allowed(address: Address, *, allow_loopback: bool) -> bool:
    """Whether chinwag may connect to ``address``: a public one, or loopback when the
    development flag allows it."""
    inner = _embedded_v4(address)
    if inner is not None:
        return address_allowed(inner, allow_loopback=allow_loopback)
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def is_loopback_name(host: str) -> bool:
    """``localhost`` and its subdomains, which RFC 6761 reserves for this machine (with or
    without the final dot), so the development flag covers them like ``127.0.0.1``."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def url_problem(url: object, *, allow_loopback: bool) -> str | None:
    """Why ``url`` cannot be a delivery target, or None when it can."""
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
        return f"expected a URL of at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "expected a URL without spaces or control characters (CR, LF, ...)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
        address = host_address(host)
    except ValueError:
        return "not a valid URL"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed"
    if parts.fragment or url.endswith("#"):
        return "a #fragment is not allowed"
    if not host:
        return "the URL has no host"
    if parts.scheme not in ("https", "http"):
        return "expected an https URL"
    loopback = is_loopback_name(host) or (address is not None and is_loopback_address(address))
    if loopback and allow_loopback:
        return None
    if parts.scheme != "https":
        if loopback:
            return "http is allowed only on loopback with the server's development flag"
        return "expected an https URL"
    if loopback or (address is not None and not address_allowed(address, allow_loopback=False)):
        return (
            "the host must be a public address (loopback is allowed only with the "
            "server's development flag)"
        )
    return None


def is_loopback_address(address: Address) -> bool:
    """Loopback, also when written as IPv6 carrying a loopback IPv4 (``::ffff:127.0.0.1``)."""
    inner = _embedded_v4(address)
    return (inner or address).is_loopback
