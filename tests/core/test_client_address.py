"""X-Forwarded-For is believed only from trusted proxies, read right to left."""

from __future__ import annotations

import pytest

from chinwag.core.client_address import client_address, trusted_networks

PROXIES = trusted_networks(("10.0.0.0/8", "::1"))


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_address("198.51.100.7", "203.0.113.9", PROXIES) == "198.51.100.7"


def test_a_trusted_peer_forwards_the_client() -> None:
    assert client_address("10.0.0.2", "203.0.113.9", PROXIES) == "203.0.113.9"


def test_trusted_hops_are_skipped_right_to_left() -> None:
    # The client put a fake address first; the proxies appended what they saw.
    chain = "192.0.2.66, 203.0.113.9, 10.4.4.4"
    assert client_address("10.0.0.2", chain, PROXIES) == "203.0.113.9"


def test_a_chain_of_only_trusted_hops_gives_the_leftmost() -> None:
    assert client_address("10.0.0.2", "10.9.9.9, 10.1.1.1", PROXIES) == "10.9.9.9"


@pytest.mark.parametrize("junk", ["not-an-address", "", "unknown, 10.1.1.1"])
def test_junk_stops_at_the_last_real_address(junk: str) -> None:
    expected = "10.1.1.1" if junk.endswith("10.1.1.1") else "10.0.0.2"
    assert client_address("10.0.0.2", junk, PROXIES) == expected


def test_ports_brackets_and_mapped_addresses_are_understood() -> None:
    assert client_address("::1", "203.0.113.9:4711", PROXIES) == "203.0.113.9"
    assert client_address("::1", "[2001:db8::1]:443", PROXIES) == "2001:db8::1"
    assert client_address("::ffff:10.0.0.2", "203.0.113.9", PROXIES) == "203.0.113.9"


def test_no_peer_is_unknown() -> None:
    assert client_address(None, "203.0.113.9", PROXIES) == "unknown"


def test_a_bad_trusted_entry_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        trusted_networks(("10.0.0.0/33",))
