"""The addresses a host name gives that chinwag may connect to, for the JWKS fetcher and the
webhook sender.

A name registered by an app can resolve anywhere, and differently on every lookup (DNS
rebinding), so both resolve it themselves right before connecting and connect only to an
address returned here: the address checked is the address connected to, with no second
lookup in between. The judgement of an address stays in ``core.target_urls``, which is pure;
this is the lookup around it, kept in one place so the two callers cannot drift apart.

A name that does not resolve and a name that resolves only to refused addresses both give
an empty list on purpose: each caller turns that into one message, so an app cannot tell
which internal names exist.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from chinwag.core.target_urls import address_allowed

__all__ = ["resolve_allowed"]


async def resolve_allowed(
    host: str, port: int, *, allow_loopback: bool, unencodable_is_unresolved: bool = False
) -> list[str]:
    """The allowed addresses, as the resolver wrote them, in its order (the order it thinks
    best to try), each once.

    ``unencodable_is_unresolved``: a name the IDNA codec refuses (an empty label or one over
    63 characters) raises ValueError from the lookup. The JWKS fetcher sets it, reporting
    such a name like one that does not resolve; the webhook sender leaves it off, and its
    delivery shows the codec's error instead. Both are safe: the codec refuses before any
    lookup, so neither says anything about the operator's network.

    The lookup runs in the event loop's executor: a slow resolver must not stall chat."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    except ValueError:
        if unencodable_is_unresolved:
            return []
        raise
    allowed: list[str] = []
    for *_, sockaddr in found:
        text = str(sockaddr[0])
        try:
            # A scoped IPv6 address may carry its ``%zone``, which ipaddress does not judge.
            address = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            continue  # not an IP address (no family a URL host resolves to): never allowed
        if address_allowed(address, allow_loopback=allow_loopback):
            allowed.append(text)
    return list(dict.fromkeys(allowed))
