"""Key registration and preparation: what chinwag accepts as a verification key."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from chinwag.core.errors import InvalidRequest
from chinwag.core.keys import (
    HMAC_SECRET_BYTES,
    MIN_RSA_BITS,
    Alg,
    generate_hmac_secret,
    generate_key_pair,
    hmac_secret_bytes,
    load_public_key,
    public_key_pem,
    sign_identity_token,
    verifier_for,
)


def pem_of(public: object) -> str:
    return str(
        public.public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )


def refused(text: str, alg: Alg | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        load_public_key(text, alg)
    assert info.value.status == 422
    assert info.value.data == {"property": "public_key"}
    return info.value


@pytest.fixture(scope="module")
def rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- accepted keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "inferred"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), Alg.ES256),
        (ed25519.Ed25519PrivateKey.generate, Alg.EDDSA),
    ],
)
def test_pem_public_keys_are_accepted_and_alg_inferred(make: object, inferred: Alg) -> None:
    assert callable(make)
    private = make()
    alg, key = load_public_key(pem_of(private.public_key()))
    assert alg is inferred
    assert pem_of(key) == pem_of(private.public_key())


def test_rsa_pem_defaults_to_rs256_and_can_be_pinned_to_ps256(rsa_2048: rsa.RSAPrivateKey) -> None:
    pem = pem_of(rsa_2048.public_key())
    assert load_public_key(pem)[0] is Alg.RS256
    assert load_public_key(pem, Alg.PS256)[0] is Alg.PS256


def test_pem_with_surrounding_whitespace_is_accepted(rsa_2048: rsa.RSAPrivateKey) -> None:
    assert load_public_key("\n\n  " + pem_of(rsa_2048.public_key()) + "\n  ")[0] is Alg.RS256


@pytest.mark.parametrize(
    ("make", "to_jwk", "alg"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm, Alg.ES256),
        (ed25519.Ed25519PrivateKey.generate, jwt.algorithms.OKPAlgorithm, Alg.EDDSA),
    ],
)
def test_public_jwks_are_accepted(make: object, to_jwk: object, alg: Alg) -> None:
    assert callable(make)
    public = make().public_key()
    text = to_jwk.to_jwk(public)  # type: ignore[attr-defined]
    chosen, key = load_public_key(text)
    assert chosen is alg
    assert pem_of(key) == pem_of(public)


def test_rsa_jwk_alg_member_pins_the_algorithm(rsa_2048: rsa.RSAPrivateKey) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_2048.public_key()))
    assert load_public_key(json.dumps(jwk))[0] is Alg.RS256
    assert load_public_key(json.dumps({**jwk, "alg": "PS256"}))[0] is Alg.PS256


# --- refused keys ------------------------------------------------------------------------


def test_rsa_below_2048_bits_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    error = refused(pem_of(small.public_key()))
    assert "2048" in error.message
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(small.public_key())
    refused(jwk)


def test_rsa_of_2047_bits_is_refused_2048_accepted() -> None:
    odd = rsa.generate_private_key(public_exponent=65537, key_size=2047)  # noqa: S505 (the point)
    refused(pem_of(odd.public_key()))
    assert MIN_RSA_BITS == 2048


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1()])
def test_ec_keys_not_on_p256_are_refused(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    error = refused(pem_of(public))
    assert "P-256" in error.message
    refused(pem_of(public), Alg.ES256)


def test_ec_jwk_point_not_on_the_curve_is_refused() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk["y"] = jwk["x"]  # (x, x) is (overwhelmingly likely) not a point on P-256
    refused(json.dumps(jwk))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ed448.Ed448PrivateKey.generate(),
        lambda: x25519.X25519PrivateKey.generate(),
        lambda: dsa.generate_private_key(2048),
    ],
    ids=["ed448", "x25519", "dsa"],
)
def test_other_key_types_are_refused(make: object) -> None:
    assert callable(make)
    refused(pem_of(make().public_key()))


@pytest.mark.parametrize(
    "fmt",
    [
        serialization.PrivateFormat.PKCS8,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.PrivateFormat.OpenSSH,
    ],
)
def test_private_key_pem_is_refused(rsa_2048: rsa.RSAPrivateKey, fmt: object) -> None:
    text = rsa_2048.private_bytes(
        serialization.Encoding.PEM,
        fmt,  # type: ignore[arg-type]
        serialization.NoEncryption(),
    ).decode()
    assert "private key" in refused(text).message.lower()


@pytest.mark.parametrize("alg", [Alg.ES256, Alg.EDDSA, Alg.RS256])
def test_private_jwk_is_refused(alg: Alg) -> None:
    pair = generate_key_pair(alg)
    private = serialization.load_pem_private_key(pair.private_key_pem.encode(), password=None)
    algorithm = {
        Alg.ES256: jwt.algorithms.ECAlgorithm,
        Alg.EDDSA: jwt.algorithms.OKPAlgorithm,
        Alg.RS256: jwt.algorithms.RSAAlgorithm,
    }[alg]
    text = algorithm.to_jwk(private)  # type: ignore[attr-defined]
    assert '"d"' in text
    refused(text)


def test_symmetric_jwk_is_refused() -> None:
    refused(json.dumps({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}))


@pytest.mark.parametrize(
    ("key_alg", "claimed"),
    [
        (Alg.ES256, Alg.RS256),
        (Alg.ES256, Alg.EDDSA),
        (Alg.EDDSA, Alg.ES256),
        (Alg.RS256, Alg.ES256),
        (Alg.RS256, Alg.EDDSA),
        (Alg.ES256, Alg.HS256),
        (Alg.RS256, Alg.HS256),
    ],
)
def test_alg_and_key_type_mismatch_is_refused(key_alg: Alg, claimed: Alg) -> None:
    refused(generate_key_pair(key_alg).public_key_pem, claimed)


def test_jwk_alg_member_must_be_supported_and_fit_the_key() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    for alg in ("none", "HS256", "ES384", "RS256", ""):
        refused(json.dumps({**jwk, "alg": alg}))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "{",
        "[]",
        '"key"',
        "{}",
        '{"kty":"RSA"}',
        '{"kty":"EC","crv":"P-256"}',
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    ],
)
def test_garbage_is_refused_with_invalid_request(text: str) -> None:
    refused(text)


# --- HMAC secrets --------------------------------------------------------------------------


def test_hmac_secret_is_generated_from_at_least_256_bits() -> None:
    assert HMAC_SECRET_BYTES * 8 >= 256
    secret = generate_hmac_secret(b"\x01" * 32)
    assert len(secret) == 43  # the 32 random bytes, written as unpadded base64url
    assert hmac_secret_bytes(secret) == secret.encode()  # the key is the text as printed
    for size in (0, 16, 31):
        with pytest.raises(ValueError, match="256"):
            generate_hmac_secret(b"\x01" * size)


def test_hs256_secrets_are_never_uploaded() -> None:
    refused("my-chosen-secret", Alg.HS256)


def test_hs256_pairs_are_not_generated() -> None:
    with pytest.raises(InvalidRequest):
        generate_key_pair(Alg.HS256)


# --- generated keys and verification material -------------------------------------------


@pytest.mark.parametrize("alg", [Alg.RS256, Alg.PS256, Alg.ES256, Alg.EDDSA])
def test_generated_pairs_load_and_round_trip(alg: Alg) -> None:
    pair = generate_key_pair(alg)
    assert pair.alg is alg
    assert "PRIVATE KEY" in pair.private_key_pem
    loaded_alg, key = load_public_key(pair.public_key_pem, alg)
    assert loaded_alg is alg
    assert public_key_pem(key) == pair.public_key_pem
    if alg in (Alg.RS256, Alg.PS256):
        assert isinstance(key, rsa.RSAPublicKey)
        assert key.key_size >= MIN_RSA_BITS
    token = sign_identity_token(
        {"sub": "a"}, kid="k", alg=alg, private_key_pem=pair.private_key_pem
    )
    assert jwt.get_unverified_header(token) == {"alg": alg.value, "kid": "k", "typ": "JWT"}
    head, body, sig = token.split(".")
    import base64

    signature = base64.urlsafe_b64decode(sig + "==")
    material = verifier_for(alg, public_key_pem=pair.public_key_pem)
    assert material.verify(f"{head}.{body}".encode(), signature)
    assert not material.verify(f"{head}.{body}x".encode(), signature)


def test_hs256_key_is_the_secret_as_printed() -> None:
    secret = generate_hmac_secret(b"\x02" * 32)
    token = sign_identity_token({"sub": "a"}, kid="k", alg=Alg.HS256, secret=secret)
    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"sub": "a"}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, b"\x02" * 32, algorithms=["HS256"])  # not the decoded bytes


@pytest.mark.parametrize("signature", [b"", b"\x00", b"\x00" * 64, b"\xff" * 600])
@pytest.mark.parametrize("alg", list(Alg))
def test_verify_returns_false_and_never_raises(alg: Alg, signature: bytes) -> None:
    if alg is Alg.HS256:
        material = verifier_for(alg, secret=generate_hmac_secret(b"\x03" * 32))
    else:
        material = verifier_for(alg, public_key_pem=generate_key_pair(alg).public_key_pem)
    assert material.verify(b"a.b", signature) is False


def test_verifier_needs_its_key() -> None:
    with pytest.raises(ValueError, match="secret"):
        verifier_for(Alg.HS256)
    with pytest.raises(ValueError, match="public key"):
        verifier_for(Alg.ES256)


def test_verifier_rechecks_stored_keys() -> None:
    """A weak key that somehow reached the store is still refused when prepared."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    with pytest.raises(InvalidRequest):
        verifier_for(Alg.RS256, public_key_pem=pem_of(small.public_key()))


def test_signing_needs_the_right_key_kind() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign_identity_token({}, kid="k", alg=Alg.HS256)
    with pytest.raises(ValueError, match="private key"):
        sign_identity_token({}, kid="k", alg=Alg.ES256)
