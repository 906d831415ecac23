"""Stateless nonces: the seal, the app binding, the expiry boundary and one spelling each."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.core.errors import InvalidIdentityToken, TokenRejection
from chinwag.core.nonces import NONCE_LIFETIME, check_nonce, issue_nonce

SECRET = b"s" * 32
APP = "4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e5f"
OTHER_APP = "4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e60"
NOW = 1_800_000_000.0
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def issue(random: bytes = b"r" * 16, *, now: float = NOW, app: str = APP) -> str:
    return issue_nonce(app, secret=SECRET, now=now, random=random).value


def reason(
    value: object, *, app: str = APP, now: float = NOW + 1, secret: bytes = SECRET
) -> TokenRejection:
    with pytest.raises(InvalidIdentityToken) as info:
        check_nonce(value, app, secret=secret, now=now)
    return info.value.reason


def test_issued_nonce_checks_for_its_app() -> None:
    issued = issue_nonce(APP, secret=SECRET, now=NOW, random=b"r" * 16)
    checked = check_nonce(issued.value, APP, secret=SECRET, now=NOW)
    assert checked.expires_at == issued.expires_at == NOW + NONCE_LIFETIME
    assert len(checked.key) == 32


def test_nonce_is_url_safe_and_fixed_length() -> None:
    value = issue()
    assert len(value) == 55
    assert set(value) <= set(ALPHABET)


def test_distinct_randomness_gives_distinct_nonces_and_keys() -> None:
    a, b = issue(b"a" * 16), issue(b"b" * 16)
    assert a != b
    assert check_nonce(a, APP, secret=SECRET, now=NOW).key != (
        check_nonce(b, APP, secret=SECRET, now=NOW).key
    )


def test_needs_128_random_bits() -> None:
    for size in (0, 15, 17):
        with pytest.raises(ValueError, match="random bytes"):
            issue_nonce(APP, secret=SECRET, now=NOW, random=b"r" * size)


def test_nonce_of_one_app_is_not_found_for_another() -> None:
    assert reason(issue(), app=OTHER_APP) is TokenRejection.NONCE_NOT_FOUND


def test_nonce_under_another_server_secret_is_not_found() -> None:
    assert reason(issue(), secret=b"t" * 32) is TokenRejection.NONCE_NOT_FOUND


def test_expiry_boundary() -> None:
    value = issue()
    expires = NOW + NONCE_LIFETIME
    assert check_nonce(value, APP, secret=SECRET, now=expires - 0.001)
    assert reason(value, now=expires) is TokenRejection.NONCE_EXPIRED
    assert reason(value, now=expires + 1e9) is TokenRejection.NONCE_EXPIRED


def test_fractional_issue_time_never_extends_the_lifetime() -> None:
    issued = issue_nonce(APP, secret=SECRET, now=NOW + 0.9, random=b"r" * 16)
    assert issued.expires_at <= NOW + 0.9 + NONCE_LIFETIME


def test_lifetime_is_a_parameter() -> None:
    issued = issue_nonce(APP, secret=SECRET, now=NOW, random=b"r" * 16, lifetime=5)
    assert reason(issued.value, now=NOW + 5) is TokenRejection.NONCE_EXPIRED


def _raw(value: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("index", [0, 1, 8, 9, 24, 25, 40])
def test_any_flipped_bit_breaks_the_seal(index: int) -> None:
    raw = _raw(issue())
    raw[index] ^= 0x01
    assert reason(_encode(bytes(raw))) is TokenRejection.NONCE_NOT_FOUND


def test_extending_the_expiry_breaks_the_seal() -> None:
    raw = _raw(issue())
    raw[1:9] = struct.pack(">Q", int(NOW) + 10**6)
    assert reason(_encode(bytes(raw)), now=NOW + 3600) is TokenRejection.NONCE_NOT_FOUND


def test_non_canonical_spelling_of_a_nonce_is_refused() -> None:
    """41 bytes leave 2 unused bits in the last character: four spellings would decode to
    one sealed nonce, each with its own consumption key, so one nonce could open four
    sessions. Only the issued spelling is accepted."""
    value = issue()
    last = ALPHABET.index(value[-1])
    for bits in (1, 2, 3):
        variant = value[:-1] + ALPHABET[last ^ bits]
        assert _raw(variant) == _raw(value)
        assert reason(variant) is TokenRejection.NONCE_NOT_FOUND


@pytest.mark.parametrize(
    "value",
    [
        None,
        123,
        b"bytes",
        "",
        "abc",
        "A" * 54,
        "A" * 56,
        "A" * 57,
        "A" * 10_000,
        "x" * 54 + "=",
        "x" * 54 + "+",
        " " + "x" * 55,
        "é" * 55,
    ],
)
def test_wrong_shapes_are_not_found(value: object) -> None:
    assert reason(value) is TokenRejection.NONCE_NOT_FOUND


def test_padded_spelling_is_refused() -> None:
    assert reason(issue() + "=") is TokenRejection.NONCE_NOT_FOUND


def test_wrong_version_byte_is_not_found() -> None:
    raw = _raw(issue())
    raw[0] = 2
    assert reason(_encode(bytes(raw))) is TokenRejection.NONCE_NOT_FOUND


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.binary(max_size=41).map(_encode))
def test_arbitrary_input_is_only_ever_not_found(value: str) -> None:
    assert reason(value) is TokenRejection.NONCE_NOT_FOUND
