"""Which address a request came from, given the TCP peer and ``X-Forwarded-For``.

Anyone can send ``X-Forwarded-For``, so it only counts when the peer is a configured
trusted proxy; otherwise a client could give itself a fresh address per request and walk
past every per-address limit. Behind trusted proxies the header is read right to left
(each proxy appends the address it saw), skipping trusted hops: the first address that is
not a trusted proxy is the client. Anything unparsable stops the walk at the last address
known to be real.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["Network", "client_address", "trusted_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse addresses and CIDRs (``10.0.0.0/8``, ``::1``); raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _parse(text: str) -> _Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: _Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy."""
    if peer is None:
        return "unknown"
    current = _parse(peer)
    if current is None or not forwarded_for or not _trusted(current, trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        parsed = _parse(hop)
        if parsed is None:
            break
        current = parsed
        if not _trusted(current, trusted):
            break
    return str(current)
