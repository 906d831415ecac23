"""Session tokens: shape, parsing, hash at rest, constant-time comparison."""

from __future__ import annotations

import hashlib
import inspect
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.core import session_tokens
from chinwag.core.session_tokens import (
    ID_BYTES,
    SECRET_BYTES,
    new_session_token,
    parse_session_token,
    secret_matches,
)


def fresh() -> session_tokens.NewSessionToken:
    return new_session_token(secrets.token_bytes(ID_BYTES + SECRET_BYTES))


def test_token_shape() -> None:
    token = fresh()
    prefix, _, rest = token.token.partition("_")
    session_id, dot, secret = rest.partition(".")
    assert (prefix, dot) == ("cws", ".")
    assert session_id == token.session_id
    assert len(session_id) == 22  # 128 bits
    assert len(secret) == 43  # 256 bits
    assert token.secret_hash == hashlib.sha256(secret.encode()).digest()


def test_entropy_is_at_least_128_bits_of_id_and_256_of_secret() -> None:
    assert ID_BYTES * 8 >= 128
    assert SECRET_BYTES * 8 >= 256


def test_the_secret_is_not_stored_only_its_hash() -> None:
    token = fresh()
    secret = token.token.split(".", 1)[1]
    assert secret.encode() not in token.secret_hash
    assert token.secret_hash != secret.encode()


def test_needs_exactly_48_random_bytes() -> None:
    for size in (0, 47, 49):
        with pytest.raises(ValueError, match="random bytes"):
            new_session_token(b"\x00" * size)


def test_parse_round_trips_and_matches() -> None:
    token = fresh()
    parsed = parse_session_token(token.token)
    assert parsed is not None
    assert parsed.session_id == token.session_id
    assert secret_matches(token.secret_hash, parsed)


def test_a_different_secret_does_not_match() -> None:
    token = fresh()
    other = fresh()
    forged = f"cws_{token.session_id}.{other.token.split('.', 1)[1]}"
    parsed = parse_session_token(forged)
    assert parsed is not None
    assert parsed.session_id == token.session_id
    assert not secret_matches(token.secret_hash, parsed)


def test_comparison_is_constant_time() -> None:
    """The stored hash is compared with hmac.compare_digest, never ==."""
    source = inspect.getsource(secret_matches)
    assert "compare_digest" in source
    assert "==" not in source


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("cws_", "CWS_"),
        lambda t: t.replace("cws_", ""),
        lambda t: t.replace(".", ""),
        lambda t: t.replace(".", ":"),
        lambda t: t + "=",
        lambda t: t + "\n",
        lambda t: " " + t,
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t.replace("cws_", "cws_A", 1),
        lambda t: t[:10] + "+" + t[11:],
        lambda t: t[:30] + "/" + t[31:],
        lambda t: "",
    ],
)
def test_malformed_tokens_do_not_parse(mutate: object) -> None:
    token = fresh().token
    assert callable(mutate)
    assert parse_session_token(mutate(token)) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_parses_to_none_or_a_well_formed_token(text: str) -> None:
    parsed = parse_session_token(text)
    if parsed is not None:
        assert text.startswith("cws_")
        assert len(parsed.secret_hash) == 32
