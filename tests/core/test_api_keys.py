"""Platform API keys: shape, parsing, hash at rest; never confused with a session token."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from chinwag.core.api_keys import (
    ID_BYTES,
    SECRET_BYTES,
    NewApiKey,
    new_api_key,
    parse_api_key,
    secret_matches,
)
from chinwag.core.session_tokens import new_session_token, parse_session_token


def fresh() -> NewApiKey:
    return new_api_key(secrets.token_bytes(ID_BYTES + SECRET_BYTES))


def test_key_shape_is_prefix_eight_char_id_and_base64url_secret() -> None:
    key = fresh()
    assert key.token.startswith("cwk_")
    key_id, secret = key.token[4:12], key.token[13:]
    assert key.token[12] == "_"
    assert key_id == key.key_id
    assert len(key_id) == 8
    assert key_id.isalnum()
    assert key_id.islower()
    assert len(secret) == 43
    assert key.secret_hash == hashlib.sha256(secret.encode()).digest()


def test_parse_round_trips_and_the_hash_matches() -> None:
    key = fresh()
    parsed = parse_api_key(key.token)
    assert parsed is not None
    assert parsed.key_id == key.key_id
    assert secret_matches(key.secret_hash, parsed)


def test_a_different_secret_with_the_same_id_does_not_match() -> None:
    key = fresh()
    forged = key.token[:-1] + ("A" if key.token[-1] != "A" else "B")
    parsed = parse_api_key(forged)
    assert parsed is not None
    assert not secret_matches(key.secret_hash, parsed)


@pytest.mark.parametrize(
    "token", ["", "cwk_", "cwk_abcdefgh_short", "Bearer cwk_x", "cwk_ABCDEFGH_" + "a" * 43]
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_api_key(token) is None


def test_api_keys_and_session_tokens_never_parse_as_each_other() -> None:
    session = new_session_token(secrets.token_bytes(48)).token
    assert parse_api_key(session) is None
    assert parse_session_token(fresh().token) is None


def test_wrong_amount_of_randomness_is_refused() -> None:
    with pytest.raises(ValueError, match="random bytes"):
        new_api_key(b"x" * 10)
