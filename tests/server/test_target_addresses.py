"""The lookup the JWKS fetcher and the webhook sender share, against the real resolver:
literal addresses (which resolve without DNS), ``localhost`` and a ``.invalid`` name."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from chinwag.core.target_urls import address_allowed
from chinwag.server.target_addresses import resolve_allowed


@pytest.mark.parametrize(
    ("host", "allow_loopback", "expected"),
    [
        ("8.8.8.8", False, ["8.8.8.8"]),
        ("127.0.0.1", True, ["127.0.0.1"]),
        ("::1", True, ["::1"]),
        # Kept as the resolver writes it: the sender connects to exactly this text.
        ("::ffff:8.8.8.8", False, ["::ffff:8.8.8.8"]),
        ("127.0.0.1", False, []),
        ("::1", False, []),
        ("10.0.0.1", True, []),
        ("169.254.169.254", True, []),
        ("::ffff:10.0.0.1", True, []),
        ("fe80::1", True, []),
    ],
)
async def test_only_addresses_the_target_rule_accepts_are_returned(
    host: str, allow_loopback: bool, expected: list[str]
) -> None:
    assert await resolve_allowed(host, 443, allow_loopback=allow_loopback) == expected


async def test_a_name_gives_its_allowed_addresses_in_resolver_order_each_once() -> None:
    found = socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)
    texts = [str(sockaddr[0]) for *_, sockaddr in found]
    loopback = [t for t in texts if ipaddress.ip_address(t.partition("%")[0]).is_loopback]
    assert loopback, "localhost resolves to no loopback address here"
    allowed = await resolve_allowed("localhost", 443, allow_loopback=True)
    assert allowed == list(dict.fromkeys(loopback))
    assert all(address_allowed(ipaddress.ip_address(a), allow_loopback=True) for a in allowed)


async def test_a_refused_name_and_a_name_that_does_not_resolve_look_the_same() -> None:
    """Both are empty, so neither caller can word them differently (which would tell an
    app which internal names exist). ``.invalid`` never resolves (RFC 6761)."""
    assert await resolve_allowed("localhost", 443, allow_loopback=False) == []
    assert await resolve_allowed("nothing.invalid", 443, allow_loopback=False) == []
    assert await resolve_allowed("nothing.invalid", 443, allow_loopback=True) == []


async def test_a_name_the_idna_codec_refuses_is_raised_unless_asked_otherwise() -> None:
    """The webhook sender lets the codec's error through to its delivery; the JWKS fetcher
    reports such a name as not resolving."""
    host = "a" * 64 + ".example"  # a label over 63 characters
    with pytest.raises(ValueError, match="idna"):
        await resolve_allowed(host, 443, allow_loopback=True)
    assert (
        await resolve_allowed(host, 443, allow_loopback=True, unencodable_is_unresolved=True) == []
    )
