"""JWKS documents and URLs: what is usable, how long it is trusted, what may be fetched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chinwag.core.errors import InvalidRequest
from chinwag.core.jwks import MAX_MAX_AGE, MIN_MAX_AGE, cache_lifetime, parse_jwks
from chinwag.core.jwks_url import check_jwks_url
from chinwag.core.keys import Alg, generate_key_pair
from tests.support import jwk_for


def _doc(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


@pytest.mark.parametrize("alg", [Alg.ES256, Alg.RS256, Alg.PS256, Alg.EDDSA])
def test_each_asymmetric_key_is_pinned_to_its_alg(alg: Alg) -> None:
    parsed = parse_jwks(_doc(jwk_for(generate_key_pair(alg), "k1")))
    assert parsed.algs() == {"k1": alg}
    assert parsed.rejected == ()


def test_an_ec_key_without_alg_is_pinned_to_the_alg_its_type_implies() -> None:
    jwk = jwk_for(generate_key_pair(Alg.ES256), "k1")
    del jwk["alg"]
    assert parse_jwks(_doc(jwk)).algs() == {"k1": Alg.ES256}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"alg": "none"}, "'alg: none' is refused"),
        ({"alg": "HS256"}, "HS256 keys are secrets"),
        ({"alg": "RS512"}, "Unsupported JWK alg"),
        ({"use": "enc"}, "'use' must be 'sig'"),
        ({"kid": ""}, "needs a 'kid'"),
        ({"d": "c2VjcmV0"}, "public key only"),
        ({"alg": "RS256"}, "RS256 needs an RSA public key"),
    ],
)
def test_an_unusable_key_is_left_out_with_its_reason(change: dict[str, str], reason: str) -> None:
    good = jwk_for(generate_key_pair(Alg.ES256), "good")
    bad = jwk_for(generate_key_pair(Alg.ES256), "bad") | change
    parsed = parse_jwks(_doc(good, bad))
    assert parsed.algs() == {"good": Alg.ES256}
    assert len(parsed.rejected) == 1
    assert reason in parsed.rejected[0].reason


def test_symmetric_oct_keys_are_refused() -> None:
    good = jwk_for(generate_key_pair(Alg.EDDSA), "good")
    oct_key = {"kty": "oct", "kid": "shared", "k": "c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256"}
    parsed = parse_jwks(_doc(good, oct_key))
    assert list(parsed.keys) == ["good"]
    assert parsed.rejected[0].kid == "shared"
    assert "oct" in parsed.rejected[0].reason


def test_a_set_with_no_usable_key_is_refused_whole() -> None:
    oct_key = {"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS256"}
    none_key = jwk_for(generate_key_pair(Alg.ES256), "n") | {"alg": "none"}
    with pytest.raises(InvalidRequest, match="no usable signing key") as caught:
        parse_jwks(_doc(oct_key, none_key))
    assert caught.value.status == 422


def test_a_kid_listed_twice_is_ambiguous_and_left_out() -> None:
    one, two = (jwk_for(generate_key_pair(Alg.ES256), "dup") for _ in range(2))
    other = jwk_for(generate_key_pair(Alg.ES256), "other")
    parsed = parse_jwks(_doc(one, two, other))
    assert list(parsed.keys) == ["other"]
    assert [r.kid for r in parsed.rejected] == ["dup"]


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"keys": {}}', b'{"keys": [], "keys": []}', b"\xff", b'{"keys": [NaN]}'],
)
def test_a_document_that_is_not_a_strict_jwks_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_jwks(body)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300),
        ("", 300),
        ("public, max-age=3600", 3600),
        ("max-age=0", MIN_MAX_AGE),
        ("max-age=5, must-revalidate", MIN_MAX_AGE),
        ("max-age=99999999", MAX_MAX_AGE),
        ("no-store", MIN_MAX_AGE),
        ("s-maxage=9000", 300),
        ("Max-Age=120", 120),
    ],
)
def test_cache_lifetime_follows_max_age_within_bounds(header: str | None, seconds: float) -> None:
    assert cache_lifetime(header) == seconds


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.example.com/.well-known/jwks.json",
        "https://auth.example.com:8443/jwks?tenant=1",
        "https://93.184.216.34/jwks.json",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert check_jwks_url(url, allow_insecure=False) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://auth.example.com/jwks.json", "https"),
        ("http://127.0.0.1:8000/jwks.json", "https"),
        ("https://127.0.0.1/jwks.json", "public address"),
        ("https://localhost/jwks.json", "public address"),
        ("https://10.0.0.5/jwks.json", "public address"),
        ("https://169.254.169.254/latest", "public address"),
        ("https://[::1]/jwks.json", "public address"),
        # Hosts resolvers read as IPv4 (integer, short, hex) and IPv6 carrying an IPv4.
        ("https://2130706433/jwks", "public address"),
        ("https://127.1/jwks", "public address"),
        ("https://0x7f000001/jwks", "public address"),
        ("https://0x7f.1/jwks", "public address"),
        ("https://[::ffff:127.0.0.1]/jwks", "public address"),
        ("https://167772161/jwks", "public address"),
        ("https://[64:ff9b::a00:1]/jwks", "public address"),
        ("https://localhost./jwks", "public address"),
        ("https://keys.localhost/jwks", "public address"),
        ("https://1.2.3.4.5/jwks", "parse"),
        ("https://user:pw@auth.example.com/jwks.json", "credentials"),
        ("https://auth.example.com/jwks.json#x", "fragment"),
        ("ftp://auth.example.com/jwks.json", "https"),
        ("https:///jwks.json", "https"),
        ("https://auth.example.com:99999/", "parse"),
        ("https://auth.example.com/ jwks", "printable"),
        ("", "characters"),
        ("https://a.example/" + "x" * 2048, "characters"),
    ],
)
def test_other_urls_are_refused_without_the_development_flag(url: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as caught:
        check_jwks_url(url, allow_insecure=False)
    assert caught.value.data == {"property": "jwks_url"}


def test_the_development_flag_allows_loopback_only() -> None:
    for url in ("http://127.0.0.1:9/jwks", "http://localhost/jwks", "https://[::1]/jwks"):
        assert check_jwks_url(url, allow_insecure=True) == url
    for url in ("http://auth.example.com/jwks", "https://192.168.1.2/jwks"):
        with pytest.raises(InvalidRequest):
            check_jwks_url(url, allow_insecure=True)


def test_the_development_flag_reads_loopback_in_every_form_and_private_ones_too() -> None:
    loopback = [
        "http://2130706433:9/jwks",
        "http://127.1/jwks",
        "https://0x7f000001/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "http://localhost./jwks",
        "http://keys.localhost/jwks",
    ]
    for url in loopback:
        assert check_jwks_url(url, allow_insecure=True) == url
    for url in ("https://10.1/jwks", "https://167772161/jwks", "https://[::ffff:10.0.0.1]/jwks"):
        with pytest.raises(InvalidRequest, match="public address") as caught:
            check_jwks_url(url, allow_insecure=True)
        assert caught.value.data == {"property": "jwks_url"}
        assert caught.value.status == 422
