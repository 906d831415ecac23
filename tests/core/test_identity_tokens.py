"""Identity-token rules and the known JWT attack classes, against the pure core.

Every malicious token here is built by hand (base64, json, cryptography) so that exactly one
thing is wrong with it; where the attack needs a valid signature over the malformed input,
the token is re-signed, so the only possible reason to refuse it is the rule under test.
Numbers in comments refer to the attack classes in token-security-rules.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chinwag.core.errors import InvalidIdentityToken, TokenRejection
from chinwag.core.identity_tokens import (
    MAX_TOKEN_LENGTH,
    IdentityClaims,
    TokenKey,
    TokenPolicy,
    parse_identity_token,
    verify_identity_token,
)
from chinwag.core.keys import Alg, KeyMaterial, generate_key_pair, verifier_for

NOW = 1_800_000_000
APP = "4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e5f"
KID = "key_0123456789abcdef01234567"
NONCE = "AQAAAAAAAAZAqKQWFdAPf5_iiwf62UoG0co_5-C18LQGwlUvdcxWn4Q"
POLICY = TokenPolicy(app_id=APP, production=False, require_nonce=True, max_token_age=900)
NO_NONCE = TokenPolicy(app_id=APP, production=False, require_nonce=False, max_token_age=900)
PRODUCTION = TokenPolicy(app_id=APP, production=True, require_nonce=True, max_token_age=900)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ASYMMETRIC = [Alg.RS256, Alg.PS256, Alg.ES256, Alg.EDDSA]


# --- hand-rolled JWS ---------------------------------------------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Signer:
    """One key: signs raw signing input the way an app backend would, verifies as chinwag."""

    alg: Alg
    private: Any  # a cryptography private key, or the HMAC secret bytes
    key: TokenKey

    def sign(self, signing_input: bytes) -> bytes:
        return raw_sign(self.alg, self.private, signing_input)

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def raw_sign(alg: Alg | str, private: Any, signing_input: bytes) -> bytes:
    if alg == Alg.HS256:
        return hmac.new(private, signing_input, hashlib.sha256).digest()
    if alg == Alg.RS256:
        return bytes(private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))
    if alg == Alg.PS256:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return bytes(private.sign(signing_input, pss, hashes.SHA256()))
    if alg == Alg.ES256:
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == Alg.EDDSA:
        return bytes(private.sign(signing_input))
    raise AssertionError(alg)


def make_signer(
    alg: Alg, *, kid: str = KID, enabled: bool = True, development: bool = False
) -> Signer:
    if alg is Alg.HS256:
        printed = b64u(b"\x07" * 32)  # the HMAC key is the printed text's bytes
        material = verifier_for(alg, secret=printed)
        return Signer(alg, printed.encode(), TokenKey(kid, material, enabled, development))
    pair = generate_key_pair(alg)
    private = serialization.load_pem_private_key(pair.private_key_pem.encode(), password=None)
    material = verifier_for(alg, public_key_pem=pair.public_key_pem)
    return Signer(alg, private, TokenKey(kid, material, enabled, development))


def forge(
    header: dict[str, Any] | bytes,
    claims: dict[str, Any] | bytes,
    *,
    signer: Signer | None = None,
    sign_alg: Alg | None = None,
    sign_key: Any = None,
    signature: bytes | None = None,
) -> str:
    """Build a compact JWS; sign with ``signer`` (or an explicit alg and key) unless
    ``signature`` is given."""
    head = b64u(header if isinstance(header, bytes) else compact_json(header))
    body = b64u(claims if isinstance(claims, bytes) else compact_json(claims))
    signing_input = f"{head}.{body}".encode()
    if signature is None:
        if signer is not None:
            signature = signer.sign(signing_input)
        else:
            assert sign_alg is not None
            signature = raw_sign(sign_alg, sign_key, signing_input)
    return f"{head}.{body}.{b64u(signature)}"


def resign(signer: Signer, head: str, body: str) -> str:
    """Sign exactly these (possibly malformed) segments."""
    return f"{head}.{body}.{b64u(signer.sign(f'{head}.{body}'.encode()))}"


def good_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "nce": NONCE, "iat": NOW, **extra}


def header_for(signer: Signer, **extra: Any) -> dict[str, Any]:
    return {"alg": signer.alg.value, "kid": signer.key.kid, "typ": "JWT", **extra}


def token_for(signer: Signer, claims: dict[str, Any] | None = None, **header: Any) -> str:
    return forge(
        header_for(signer, **header), good_claims() if claims is None else claims, signer=signer
    )


def verify(
    token: object,
    key: TokenKey | None,
    policy: TokenPolicy = POLICY,
    now: float = NOW,
) -> IdentityClaims:
    return verify_identity_token(parse_identity_token(token), key=key, policy=policy, now=now)


def rejected(call: Callable[[], object]) -> InvalidIdentityToken:
    with pytest.raises(InvalidIdentityToken) as info:
        call()
    return info.value


def reason_of(
    token: object, signer: Signer | None, policy: TokenPolicy = POLICY, now: float = NOW
) -> TokenRejection:
    key = signer.key if signer is not None else None
    return rejected(lambda: verify(token, key, policy, now)).reason


@pytest.fixture(scope="module")
def signers() -> dict[Alg, Signer]:
    return {alg: make_signer(alg) for alg in Alg}


@pytest.fixture(scope="module")
def es(signers: dict[Alg, Signer]) -> Signer:
    return signers[Alg.ES256]


@pytest.fixture(scope="module")
def hs(signers: dict[Alg, Signer]) -> Signer:
    return signers[Alg.HS256]


# --- the happy path (the control every attack below differs from) ------------------------


@pytest.mark.parametrize("alg", list(Alg))
def test_valid_token_of_every_key_type_is_accepted(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    claims = verify(token_for(signer), signer.key)
    assert claims.user_id == "alice"
    assert claims.nonce == NONCE
    assert claims.issued_at == NOW


def test_token_signed_by_pyjwt_is_accepted(es: Signer) -> None:
    import jwt

    token = jwt.encode(good_claims(), es.private, algorithm="ES256", headers={"kid": KID})
    assert verify(token, es.key).user_id == "alice"


# --- 1. alg none, 20. null signature -----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 32])
def test_alg_none_is_refused_in_every_casing(es: Signer, alg: str, signature: bytes) -> None:
    token = forge({"alg": alg, "kid": KID}, good_claims(), signature=signature)
    error = rejected(lambda: parse_identity_token(token))
    assert error.reason is TokenRejection.SIGNATURE_INVALID


def test_alg_none_without_signature_segment_is_refused() -> None:
    head = b64u(compact_json({"alg": "none", "kid": KID}))
    body = b64u(compact_json(good_claims()))
    for token in (f"{head}.{body}", f"{head}.{body}."):
        assert rejected(lambda t=token: parse_identity_token(t)).reason in {  # type: ignore[misc]
            TokenRejection.MALFORMED,
            TokenRejection.SIGNATURE_INVALID,
        }


@pytest.mark.parametrize("alg", list(Alg))
def test_valid_header_and_payload_with_empty_signature_is_refused(
    signers: dict[Alg, Signer], alg: Alg
) -> None:
    signer = signers[alg]
    head, body, _ = token_for(signer).split(".")
    assert reason_of(f"{head}.{body}.", signer) is TokenRejection.SIGNATURE_INVALID


# --- 2, 3. asymmetric → HS256 confusion -----------------------------------------------------


def _public_key_spellings(signer: Signer) -> dict[str, bytes]:
    public = signer.private.public_key()
    pem = signer.public_pem()
    spellings = {
        "pem": pem,
        "pem-stripped": pem.strip(),
        "pem-crlf": pem.replace(b"\n", b"\r\n"),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }
    import jwt

    if isinstance(public, rsa.RSAPublicKey):
        spellings["jwk"] = jwt.algorithms.RSAAlgorithm.to_jwk(public).encode()
        spellings["pkcs1-pem"] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
    elif isinstance(public, ec.EllipticCurvePublicKey):
        spellings["jwk"] = jwt.algorithms.ECAlgorithm.to_jwk(public).encode()
        spellings["x962-point"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    elif isinstance(public, ed25519.Ed25519PublicKey):
        spellings["jwk"] = jwt.algorithms.OKPAlgorithm.to_jwk(public).encode()
        spellings["raw"] = public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return spellings


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_hs256_signed_with_the_public_key_is_refused(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    for name, secret in _public_key_spellings(signer).items():
        token = forge(
            {"alg": "HS256", "kid": KID}, good_claims(), sign_alg=Alg.HS256, sign_key=secret
        )
        # Control: the forgery is a correct HS256 token for that secret …
        as_hmac = TokenKey(KID, KeyMaterial(Alg.HS256, secret), True, False)
        assert verify(token, as_hmac).user_id == "alice", name
        # … and the app's asymmetric key refuses it.
        assert reason_of(token, signer) is TokenRejection.SIGNATURE_INVALID, name


@pytest.mark.parametrize(
    ("key_alg", "token_alg"),
    [
        (Alg.RS256, Alg.PS256),
        (Alg.PS256, Alg.RS256),
        (Alg.HS256, Alg.RS256),
        (Alg.ES256, Alg.EDDSA),
    ],
)
def test_alg_other_than_the_keys_pinned_alg_is_refused(
    signers: dict[Alg, Signer], key_alg: Alg, token_alg: Alg
) -> None:
    key_signer = signers[key_alg]
    if {key_alg, token_alg} == {Alg.RS256, Alg.PS256}:
        # Same RSA key, other padding: the signature is genuinely valid under token_alg.
        private = key_signer.private
    else:
        private = signers[token_alg].private
    token = forge(
        {"alg": token_alg.value, "kid": KID}, good_claims(), sign_alg=token_alg, sign_key=private
    )
    assert reason_of(token, key_signer) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("alg", ["es256", "Es256", "ES256 ", "ES384", "ES512", "ES256K", "HS512"])
def test_alg_spellings_other_than_the_exact_one_are_refused(es: Signer, alg: str) -> None:
    token = forge({"alg": alg, "kid": KID}, good_claims(), sign_alg=Alg.ES256, sign_key=es.private)
    assert reason_of(token, es) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("alg", [None, "", 256, ["ES256"], {"alg": "ES256"}, True])
def test_alg_missing_or_not_a_string_is_malformed(es: Signer, alg: object) -> None:
    header: dict[str, Any] = {"kid": KID}
    if alg is not None:
        header["alg"] = alg
    token = forge(header, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.MALFORMED


# --- key lookup, 7. kid injection, disabled and development keys -----------------------


def test_kid_is_required(es: Signer) -> None:
    token = forge({"alg": "ES256"}, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.MALFORMED


def test_unknown_kid_is_signature_invalid(es: Signer) -> None:
    assert reason_of(token_for(es), None) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize(
    "kid",
    [
        "",
        "../../../../../../dev/null",
        "/dev/null",
        "/invalid_path",
        "x' UNION SELECT '1';--",
        "1 OR 1=1",
        "|sleep 10",
        "| curl http://127.0.0.1:1/",
        "$(id)",
        "`id`",
        "key\x00",
        "key\n",
        "k" * 129,
        "ключ",
        123,
        ["key"],
        {"$ne": None},
        True,
    ],
)
def test_kid_injection_strings_never_reach_a_lookup(hs: Signer, kid: object) -> None:
    # Signed with the keys jwt_tool tries: empty, "1", and the real secret.
    for secret in (b"", b"1", hs.private):
        token = forge(
            {"alg": "HS256", "kid": kid}, good_claims(), sign_alg=Alg.HS256, sign_key=secret
        )
        error = rejected(lambda t=token: parse_identity_token(t))  # type: ignore[misc]
        assert error.reason is TokenRejection.SIGNATURE_INVALID


def test_kid_null_is_malformed(es: Signer) -> None:
    token = forge({"alg": "ES256", "kid": None}, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.MALFORMED


def test_disabled_key_is_signature_invalid() -> None:
    signer = make_signer(Alg.EDDSA, enabled=False)
    assert reason_of(token_for(signer), signer) is TokenRejection.SIGNATURE_INVALID


def test_development_key_works_for_staging_but_not_production() -> None:
    dev = make_signer(Alg.ES256, development=True)
    token = token_for(dev)
    assert verify(token, dev.key, POLICY).user_id == "alice"
    assert reason_of(token, dev, PRODUCTION) is TokenRejection.SIGNATURE_INVALID


def test_production_key_works_for_production(es: Signer) -> None:
    assert verify(token_for(es), es.key, PRODUCTION).user_id == "alice"


def test_every_key_failure_gives_the_same_answer(signers: dict[Alg, Signer]) -> None:
    """No oracle: unknown kid, disabled key, dev key, alg mismatch, bad signature all look
    identical from outside (reason, message and data)."""
    es = signers[Alg.ES256]
    good = token_for(es)
    head, body, _sig = good.split(".")
    other = make_signer(Alg.ES256)
    cases = [
        (good, None, POLICY),
        (good, make_signer(Alg.ES256, enabled=False).key, POLICY),
        (token_for(make_signer(Alg.ES256, development=True)), None, PRODUCTION),
        (good, signers[Alg.EDDSA].key, POLICY),
        (token_for(other), es.key, POLICY),
        (f"{head}.{body}.{b64u(bytes(64))}", es.key, POLICY),
    ]
    dev = make_signer(Alg.ES256, development=True)
    cases[2] = (token_for(dev), dev.key, PRODUCTION)
    answers = set()
    for token, key, policy in cases:
        error = rejected(lambda t=token, k=key, p=policy: verify(t, k, p))  # type: ignore[misc]
        answers.add(json.dumps(error.to_json(), sort_keys=True))
    assert len(answers) == 1
    assert '"signature_invalid"' in answers.pop()


# --- 6, 8, 9, 11, 16. header parameters ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "oct", "k": "AAAA"}),
        ("x5c", ["MIIB"]),
        ("x5t", "abc"),
        ("x5t#S256", "abc"),
        ("crit", ["exp"]),
        ("crit", []),
        ("b64", False),
        ("b64", True),
        ("zip", "DEF"),
        ("enc", "A256GCM"),
        ("p2c", 10**9),
        ("epk", {}),
        ("Alg", "ES256"),
        ("KID", KID),
        ("url", "https://example.com"),
        ("", 1),
    ],
)
def test_header_parameters_outside_the_allow_list_are_refused(
    es: Signer, name: str, value: object
) -> None:
    token = forge({**header_for(es), name: value}, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.UNSUPPORTED_HEADER


def test_embedded_jwk_of_the_attackers_key_is_refused() -> None:
    import jwt

    attacker = make_signer(Alg.ES256)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.private.public_key()))
    token = forge({"alg": "ES256", "kid": KID, "jwk": jwk}, good_claims(), signer=attacker)
    assert reason_of(token, make_signer(Alg.ES256)) is TokenRejection.UNSUPPORTED_HEADER


@pytest.mark.parametrize("cty", ["JWT", "jwt", "JWE", "application/json", "", 1, None])
def test_nested_or_unknown_content_types_are_refused(es: Signer, cty: object) -> None:
    token = forge({**header_for(es), "cty": cty}, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.UNSUPPORTED_HEADER


@pytest.mark.parametrize("cty", ["chinwag-eit;v=1", "layer-eit;v=1", "Layer-EIT;v=1"])
def test_layer_and_chinwag_content_types_are_accepted(es: Signer, cty: str) -> None:
    assert verify(forge({**header_for(es), "cty": cty}, good_claims(), signer=es), es.key)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "chinwag-id+jwt", "application/chinwag-id+jwt"])
def test_accepted_typ_values(es: Signer, typ: str) -> None:
    assert verify(forge({**header_for(es), "typ": typ}, good_claims(), signer=es), es.key)


@pytest.mark.parametrize("typ", ["at+jwt", "JOSE", "JWE", "", 1, ["JWT"], None])
def test_other_typ_values_are_refused(es: Signer, typ: object) -> None:
    """Explicit typing (RFC 8725 §3.11): an access token the same key signs is not a login."""
    token = forge({**header_for(es), "typ": typ}, good_claims(), signer=es)
    assert reason_of(token, es) is TokenRejection.UNSUPPORTED_HEADER


def test_header_that_is_not_an_object_is_malformed(es: Signer) -> None:
    for header in (b'["ES256"]', b'"ES256"', b"null", b"1"):
        assert reason_of(forge(header, good_claims(), signer=es), es) is TokenRejection.MALFORMED


def test_unsupported_header_names_are_escaped_in_the_error() -> None:
    """A lone surrogate in a member name must not end up in the error text: the JSON
    renderer cannot encode it, which turned a 401 into a 500."""
    header = b'{"alg":"ES256","kid":"' + KID.encode() + b'","\\ud800x":1}'
    error = rejected(lambda: parse_identity_token(forge(header, good_claims(), signature=b"s")))
    assert error.reason is TokenRejection.UNSUPPORTED_HEADER
    rendered = json.dumps(error.to_json(), ensure_ascii=False)
    rendered.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate


def test_error_never_echoes_a_large_input(es: Signer) -> None:
    token = forge({**header_for(es), "x" * 900: 1}, good_claims(), signer=es)
    error = rejected(lambda: parse_identity_token(token))
    assert len(json.dumps(error.to_json())) < 800


# --- 10. JWE / JSON serialisation / segment count ------------------------------------------


def test_jwe_compact_five_segments_is_refused(es: Signer) -> None:
    head = b64u(compact_json({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": KID}))
    token = ".".join([head, b64u(b"k" * 256), b64u(b"i" * 12), b64u(b"c" * 40), b64u(b"t" * 16)])
    assert reason_of(token, es) is TokenRejection.MALFORMED


def test_jws_json_serialisation_is_refused(es: Signer) -> None:
    head, body, sig = token_for(es).split(".")
    for token in (
        json.dumps({"payload": body, "protected": head, "signature": sig}),
        json.dumps({"payload": body, "signatures": [{"protected": head, "signature": sig}]}),
    ):
        assert reason_of(token, es) is TokenRejection.MALFORMED


@pytest.mark.parametrize("count", [1, 2, 4, 5, 6])
def test_wrong_segment_count_is_malformed(es: Signer, count: int) -> None:
    parts = token_for(es).split(".")
    token = ".".join((parts * 2)[:count])
    assert reason_of(token, es) is TokenRejection.MALFORMED


@pytest.mark.parametrize("token", ["", None, 123, b"a.b.c", ["a", "b", "c"], {"t": 1}])
def test_non_string_or_empty_token_is_malformed(token: object) -> None:
    assert rejected(lambda: parse_identity_token(token)).reason is TokenRejection.MALFORMED


def test_nested_jwt_in_payload_is_not_unwrapped(es: Signer) -> None:
    inner = token_for(es)
    token = forge({**header_for(es), "cty": "JWT"}, inner.encode(), signer=es)
    assert reason_of(token, es) is TokenRejection.UNSUPPORTED_HEADER
    # And without cty the payload is simply not a JSON object.
    token = forge(header_for(es), inner.encode(), signer=es)
    assert reason_of(token, es) is TokenRejection.MALFORMED


# --- 21. base64 laxness (every variant re-signed so only the encoding is wrong) -------------


def _segments(hs: Signer, **claims: Any) -> tuple[str, str]:
    head = b64u(compact_json(header_for(hs)))
    body = b64u(compact_json(good_claims(**claims)))
    return head, body


def test_control_resigned_canonical_token_is_accepted(hs: Signer) -> None:
    head, body = _segments(hs)
    assert verify(resign(hs, head, body), hs.key).user_id == "alice"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:5] + " " + s[5:],
        lambda s: " " + s,
        lambda s: s + "\n",
        lambda s: s[:5] + "\t" + s[5:],
        lambda s: s[:5] + "#" + s[5:],
        lambda s: s[:5] + "?" + s[5:],
        lambda s: s[:5] + "%" + s[5:],
        lambda s: s[:5] + "\u0661" + s[5:],  # an Arabic-Indic digit: str.isalnum() says yes
    ],
    ids=["space", "leading-space", "newline", "tab", "hash", "question", "percent", "unicode"],
)
@pytest.mark.parametrize("where", ["header", "payload"])
def test_stray_characters_in_a_segment_are_refused(
    hs: Signer, mutate: Callable[[str], str], where: str
) -> None:
    head, body = _segments(hs)
    if where == "header":
        head = mutate(head)
    else:
        body = mutate(body)
    assert reason_of(resign(hs, head, body), hs) is TokenRejection.MALFORMED


def test_standard_alphabet_plus_and_slash_are_refused(hs: Signer) -> None:
    for n in range(64):
        body_bytes = compact_json(good_claims(display_name="?" * n + ">>>"))
        url = b64u(body_bytes)
        if "-" in url or "_" in url:
            break
    else:  # pragma: no cover
        raise AssertionError("no payload with - or _ found")
    standard = base64.b64encode(body_bytes).rstrip(b"=").decode()
    assert standard != url
    head = b64u(compact_json(header_for(hs)))
    assert verify(resign(hs, head, url), hs.key).display_name is not None
    assert reason_of(resign(hs, head, standard), hs) is TokenRejection.MALFORMED


def test_padding_is_refused_on_any_segment(hs: Signer) -> None:
    for n in range(4):
        head, body = _segments(hs, display_name="x" * n)
        if len(body) % 4:
            break
    padded = body + "=" * (-len(body) % 4)
    assert reason_of(resign(hs, head, padded), hs) is TokenRejection.MALFORMED
    good = resign(hs, head, body)
    sig = good.split(".")[2]
    assert len(sig) % 4  # 32 bytes → 43 characters
    assert reason_of(f"{head}.{body}.{sig}=", hs) is TokenRejection.MALFORMED
    assert reason_of(f"{head}.{body}.{sig}==", hs) is TokenRejection.MALFORMED


def _flip_unused_bits(segment: str) -> str:
    """Same decoded bytes, different spelling: change bits the decoder drops."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(segment) % 4 in (2, 3)
    last = alphabet.index(segment[-1])
    changed = segment[:-1] + alphabet[last ^ 1]
    pad = "=" * (-len(segment) % 4)
    assert base64.urlsafe_b64decode(changed + pad) == base64.urlsafe_b64decode(segment + pad)
    return changed


def test_non_canonical_trailing_bits_are_refused(hs: Signer) -> None:
    for n in range(4):
        head, body = _segments(hs, display_name="x" * n)
        if len(body) % 4 in (2, 3):
            break
    assert reason_of(resign(hs, head, _flip_unused_bits(body)), hs) is TokenRejection.MALFORMED
    # The signature too: the decoded MAC is identical, so only the parser can refuse it.
    good = resign(hs, head, body)
    sig = good.split(".")[2]
    assert verify(good, hs.key)
    assert reason_of(f"{head}.{body}.{_flip_unused_bits(sig)}", hs) is TokenRejection.MALFORMED


def test_impossible_base64_length_is_refused(hs: Signer) -> None:
    head, body = _segments(hs)
    body += "A" * ((1 - len(body)) % 4)
    assert len(body) % 4 == 1
    assert reason_of(resign(hs, head, body), hs) is TokenRejection.MALFORMED


# --- 12. size caps -------------------------------------------------------------------------


def test_token_over_the_cap_is_refused_before_decoding(hs: Signer) -> None:
    token = forge(header_for(hs), good_claims(pad="x" * MAX_TOKEN_LENGTH), signer=hs)
    assert reason_of(token, hs) is TokenRejection.TOKEN_TOO_LARGE


def test_huge_token_is_refused_as_too_large() -> None:
    token = "a" * 10_000_000 + ".b.c"
    error = rejected(lambda: parse_identity_token(token))
    assert error.reason is TokenRejection.TOKEN_TOO_LARGE
    assert len(error.message) < 200


def test_header_over_the_cap_is_refused(hs: Signer) -> None:
    token = forge({**header_for(hs), "typ": "JWT" + " " * 800}, {"sub": "a"}, signer=hs)
    assert reason_of(token, hs) is TokenRejection.TOKEN_TOO_LARGE


def test_signature_over_the_cap_is_refused(hs: Signer) -> None:
    head, body = _segments(hs)
    assert reason_of(f"{head}.{body}.{b64u(b'x' * 800)}", hs) is TokenRejection.TOKEN_TOO_LARGE


def test_token_just_under_the_cap_is_parsed(hs: Signer) -> None:
    head, body = _segments(hs)
    base = len(resign(hs, head, body))
    n = 0
    while True:
        head, body = _segments(hs, pad="x" * n)
        if len(resign(hs, head, body)) > MAX_TOKEN_LENGTH:
            break
        n += 1
    head, body = _segments(hs, pad="x" * (n - 1))
    token = resign(hs, head, body)
    assert base < len(token) <= MAX_TOKEN_LENGTH
    assert verify(token, hs.key).user_id == "alice"


# --- 13. JSON parser edge cases ----------------------------------------------------------


def test_deeply_nested_payload_is_malformed_not_recursion_error(hs: Signer) -> None:
    depth = 2900
    body = b'{"sub":"a","iat":1,"x":' + b"[" * depth + b"]" * depth + b"}"
    token = forge(header_for(hs), body, signer=hs)
    assert len(token) <= MAX_TOKEN_LENGTH
    assert reason_of(token, hs) is TokenRejection.MALFORMED


def test_deeply_nested_objects_in_payload_are_malformed(hs: Signer) -> None:
    depth = 1200
    body = b'{"sub":"a","x":' + b'{"":' * depth + b"1" + b"}" * depth + b"}"
    token = forge(header_for(hs), body, signer=hs)
    assert len(token) <= MAX_TOKEN_LENGTH
    assert reason_of(token, hs) is TokenRejection.MALFORMED


def test_duplicate_members_in_header_are_refused(hs: Signer) -> None:
    for header in (
        b'{"alg":"HS256","alg":"none","kid":"' + KID.encode() + b'"}',
        b'{"alg":"HS256","kid":"other","kid":"' + KID.encode() + b'"}',
    ):
        assert reason_of(forge(header, good_claims(), signer=hs), hs) is TokenRejection.MALFORMED


@pytest.mark.parametrize("name", ["sub", "iat", "nce", "iss", "exp", "display_name"])
def test_duplicate_members_in_payload_are_refused(hs: Signer, name: str) -> None:
    value = json.dumps(good_claims().get(name, "x"))
    body = compact_json(good_claims())[:-1] + f',"{name}":{value}}}'.encode()
    if name not in good_claims():
        body = body[:-1] + f',"{name}":{value}}}'.encode()
    assert reason_of(forge(header_for(hs), body, signer=hs), hs) is TokenRejection.MALFORMED


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "other"])
def test_nan_and_infinity_are_not_json(hs: Signer, constant: str, claim: str) -> None:
    body = f'{{"sub":"a","nce":"{NONCE}","iat":{NOW},"{claim}":{constant}}}'
    body = body.replace(f'"iat":{NOW},"iat"', '"iat"')
    token = forge(header_for(hs), body.encode(), signer=hs)
    assert reason_of(token, hs) is TokenRejection.MALFORMED


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode("utf-16"),
        lambda s: s.encode("utf-16-le"),
        lambda s: s.encode("utf-16-be"),
        lambda s: s.encode("utf-32"),
        lambda s: b"\xef\xbb\xbf" + s.encode(),
        lambda s: s.encode()[:-1] + b"\xff}",
        lambda s: s.encode().replace(b'"alice"', b'"\xc0\xafalice"'),  # overlong "/"
        lambda s: s.encode().replace(b'"alice"', b'"\xed\xa0\x80"'),  # encoded surrogate
        lambda s: s.encode().replace(b'"alice"', b'"ali\x00ce"'),  # raw control char
    ],
    ids=["utf16-bom", "utf16le", "utf16be", "utf32", "utf8-bom", "xff", "overlong", "cesu", "nul"],
)
def test_payload_must_be_strict_utf8(hs: Signer, encode: Callable[[str], bytes]) -> None:
    body = encode(json.dumps(good_claims(), separators=(",", ":")))
    assert reason_of(forge(header_for(hs), body, signer=hs), hs) is TokenRejection.MALFORMED


def test_header_must_be_strict_utf8(hs: Signer) -> None:
    header = json.dumps(header_for(hs)).encode("utf-16")
    assert reason_of(forge(header, good_claims(), signer=hs), hs) is TokenRejection.MALFORMED


@pytest.mark.parametrize("claim", ["iat", "other"])
def test_five_thousand_digit_integer_is_malformed(hs: Signer, claim: str) -> None:
    body = f'{{"sub":"a","nce":"{NONCE}","{claim}":{"9" * 5000}}}'.encode()
    assert reason_of(forge(header_for(hs), body, signer=hs), hs) is TokenRejection.MALFORMED


def test_large_but_parseable_integer_time_is_claim_invalid(hs: Signer) -> None:
    body = f'{{"sub":"a","nce":"{NONCE}","iat":{"9" * 4000}}}'.encode()
    assert reason_of(forge(header_for(hs), body, signer=hs), hs) is TokenRejection.CLAIM_INVALID


@pytest.mark.parametrize("payload", [b"[]", b'"sub"', b"null", b"1", b"", b" "])
def test_payload_that_is_not_an_object_is_malformed(hs: Signer, payload: bytes) -> None:
    assert reason_of(forge(header_for(hs), payload, signer=hs), hs) is TokenRejection.MALFORMED


# --- 14. time-claim type confusion ----------------------------------------------------------

BAD_TIMES = [
    "1e400",
    "-1e400",
    "null",
    "[]",
    f"[{NOW}]",
    "{}",
    f'"{NOW}"',
    '"123"',
    "true",
    "false",
    "1.5",
    f"{NOW}.0",
    f"{NOW}.5",
    f"{NOW}e0",
    f"{NOW * 1000}",  # milliseconds: year 59000
    "-1",
    str(2**63),
    str(2**64 + NOW),
]


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_time_claims_must_be_integers_in_range(hs: Signer, claim: str, value: str) -> None:
    body = f'{{"sub":"a","nce":"{NONCE}","iat":{NOW},"{claim}":{value}}}'
    if claim == "iat":
        body = body.replace(f'"iat":{NOW},', "")
    token = forge(header_for(hs), body.encode(), signer=hs)
    assert reason_of(token, hs) is TokenRejection.CLAIM_INVALID


def test_iat_is_required(hs: Signer) -> None:
    token = forge(header_for(hs), {"sub": "a", "nce": NONCE}, signer=hs)
    error = rejected(lambda: verify(token, hs.key))
    assert error.reason is TokenRejection.CLAIM_MISSING
    assert error.data["claim"] == "iat"


def test_exp_has_no_leeway(hs: Signer) -> None:
    """A session ends at exp, so a token past its exp could only open a dead session."""
    token = token_for(hs, good_claims(exp=NOW + 1))
    assert verify(token, hs.key, now=NOW + 0.999).expires_at == NOW + 1
    assert reason_of(token, hs, now=NOW + 1) is TokenRejection.EXPIRED
    assert reason_of(token, hs, now=NOW + 30) is TokenRejection.EXPIRED


def test_leeway_is_the_policys(hs: Signer) -> None:
    strict = TokenPolicy(APP, production=False, require_nonce=True, max_token_age=900, leeway=0)
    token = token_for(hs, good_claims(nbf=NOW + 10))
    assert verify(token, hs.key, now=NOW).user_id == "alice"
    assert reason_of(token, hs, strict, now=NOW + 9.5) is TokenRejection.NOT_YET_VALID
    assert verify(token, hs.key, strict, now=NOW + 10).user_id == "alice"


def test_nbf_boundary_with_leeway(hs: Signer) -> None:
    token = token_for(hs, good_claims(nbf=NOW + 60))
    assert verify(token, hs.key).user_id == "alice"
    token = token_for(hs, good_claims(nbf=NOW + 61))
    assert reason_of(token, hs) is TokenRejection.NOT_YET_VALID
    assert verify(token, hs.key, now=NOW + 1).user_id == "alice"


def test_iat_in_the_future_beyond_leeway(hs: Signer) -> None:
    assert verify(token_for(hs, good_claims(iat=NOW + 60)), hs.key).issued_at == NOW + 60
    error = rejected(lambda: verify(token_for(hs, good_claims(iat=NOW + 61)), hs.key))
    assert error.reason is TokenRejection.ISSUED_IN_FUTURE
    assert error.data["server_time"] == NOW


def test_without_nonce_iat_must_be_within_max_age(hs: Signer) -> None:
    fresh = token_for(hs, {"sub": "a", "iat": NOW - 900})
    assert verify(fresh, hs.key, NO_NONCE).nonce is None
    stale = token_for(hs, {"sub": "a", "iat": NOW - 901})
    assert reason_of(stale, hs, NO_NONCE) is TokenRejection.TOO_OLD


def test_with_nonce_the_nonce_bounds_the_age_not_iat(hs: Signer) -> None:
    old = token_for(hs, good_claims(iat=NOW - 3600))
    assert verify(old, hs.key, NO_NONCE).nonce == NONCE


def test_nonce_required_when_the_app_says_so(hs: Signer) -> None:
    token = token_for(hs, {"sub": "a", "iat": NOW})
    assert reason_of(token, hs, POLICY) is TokenRejection.NONCE_REQUIRED
    assert verify(token, hs.key, NO_NONCE).user_id == "a"


@pytest.mark.parametrize("nce", [123, ["n"], {"n": 1}, True, 1.5])
def test_nonce_claim_must_be_a_string(hs: Signer, nce: object) -> None:
    assert reason_of(token_for(hs, good_claims(nce=nce)), hs) is TokenRejection.CLAIM_INVALID


# --- 17. issuer and audience ------------------------------------------------------------------


def test_iss_equal_to_app_id_is_accepted(hs: Signer) -> None:
    assert verify(token_for(hs, good_claims(iss=APP)), hs.key)


@pytest.mark.parametrize(
    "iss",
    [
        APP[:-1],
        APP + "x",
        APP.upper(),
        " " + APP,
        f"layer:///apps/production/{APP}",
        "",
        [APP],
        None,
        {"id": APP},
        1,
    ],
)
def test_iss_must_match_exactly(hs: Signer, iss: object) -> None:
    assert reason_of(token_for(hs, good_claims(iss=iss)), hs) is TokenRejection.ISSUER_MISMATCH


@pytest.mark.parametrize("aud", [APP, [APP], ["other", APP]])
def test_aud_containing_app_id_is_accepted(hs: Signer, aud: object) -> None:
    assert verify(token_for(hs, good_claims(aud=aud)), hs.key)


@pytest.mark.parametrize(
    "aud", [APP[:10], APP + "/", [APP[:-1]], [], [[APP]], [APP, 1], {APP: True}, None, "", 5]
)
def test_aud_must_contain_app_id_exactly(hs: Signer, aud: object) -> None:
    assert reason_of(token_for(hs, good_claims(aud=aud)), hs) is TokenRejection.AUDIENCE_MISMATCH


# --- user id rules, 22. unicode ids ---------------------------------------------------------


@pytest.mark.parametrize("claim", ["sub", "prn", "external_id", "externalId"])
def test_each_user_id_claim_names_the_user(hs: Signer, claim: str) -> None:
    token = token_for(hs, {claim: "bob", "nce": NONCE, "iat": NOW})
    assert verify(token, hs.key).user_id == "bob"


def test_user_id_of_256_characters_is_accepted(hs: Signer) -> None:
    assert verify(token_for(hs, good_claims(sub="u" * 256)), hs.key).user_id == "u" * 256


@pytest.mark.parametrize(
    "sub",
    [
        "",
        "u" * 257,
        "ali\x00ce",
        "ali\x1fce",
        "\x7f",
        "a\u0085",
        "a\nb",
        123,
        0,
        True,
        ["a"],
        {"id": "a"},
        1.5,
    ],
)
def test_bad_user_ids_are_claim_invalid(hs: Signer, sub: object) -> None:
    error = rejected(lambda: verify(token_for(hs, good_claims(sub=sub)), hs.key))
    assert error.reason is TokenRejection.CLAIM_INVALID
    assert error.data["claim"] == "sub"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\ud800b", "\\udc00\\ud800"])
def test_lone_surrogate_user_id_is_claim_invalid(hs: Signer, escape: str) -> None:
    body = f'{{"sub":"{escape}","nce":"{NONCE}","iat":{NOW}}}'.encode()
    assert reason_of(forge(header_for(hs), body, signer=hs), hs) is TokenRejection.CLAIM_INVALID


def test_escaped_surrogate_pair_is_a_valid_user_id(hs: Signer) -> None:
    body = f'{{"sub":"\\ud83d\\ude00","nce":"{NONCE}","iat":{NOW}}}'.encode()
    assert verify(forge(header_for(hs), body, signer=hs), hs.key).user_id == "\U0001f600"


def test_user_ids_are_byte_exact_never_normalised(hs: Signer) -> None:
    nfc, nfd = "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m"
    assert verify(token_for(hs, good_claims(sub=nfc)), hs.key).user_id == nfc
    assert verify(token_for(hs, good_claims(sub=nfd)), hs.key).user_id == nfd
    assert verify(token_for(hs, good_claims(sub="Alice")), hs.key).user_id == "Alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a", "prn": "b"},
        {"sub": "a", "external_id": "b"},
        {"prn": "a", "externalId": "A"},
        {"sub": "a", "externalId": 5},
        {"sub": "a", "prn": ["a"]},
        {"sub": "a", "prn": "a\x00"},
    ],
)
def test_conflicting_user_id_claims_are_refused(hs: Signer, claims: dict[str, Any]) -> None:
    token = token_for(hs, {**claims, "nce": NONCE, "iat": NOW})
    assert reason_of(token, hs) is TokenRejection.CLAIM_INVALID


def test_agreeing_user_id_claims_are_accepted(hs: Signer) -> None:
    token = token_for(hs, {"sub": "a", "prn": "a", "externalId": "a", "nce": NONCE, "iat": NOW})
    assert verify(token, hs.key).user_id == "a"


def test_null_user_id_claims_count_as_absent(hs: Signer) -> None:
    token = token_for(hs, {"sub": None, "prn": "a", "nce": NONCE, "iat": NOW})
    assert verify(token, hs.key).user_id == "a"


def test_no_user_id_and_no_email_is_claim_missing(hs: Signer) -> None:
    error = rejected(lambda: verify(token_for(hs, {"nce": NONCE, "iat": NOW}), hs.key))
    assert error.reason is TokenRejection.CLAIM_MISSING


def test_email_only_token_names_the_user_by_email(hs: Signer) -> None:
    claims = verify(token_for(hs, {"email": "a@example.com", "nce": NONCE, "iat": NOW}), hs.key)
    assert claims.user_id is None
    assert claims.email == "a@example.com"


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a @example.com",
        "a@example.com\n",
        "a\x00@x.y",
        5,
        ["a@x.y"],
        "a" * 250 + "@x.yz",
    ],
)
def test_bad_email_is_claim_invalid(hs: Signer, email: object) -> None:
    token = token_for(hs, {"email": email, "nce": NONCE, "iat": NOW})
    assert reason_of(token, hs) is TokenRejection.CLAIM_INVALID


# --- profile claims ------------------------------------------------------------------------


def test_profile_claims_are_read(hs: Signer) -> None:
    claims = verify(
        token_for(
            hs,
            good_claims(
                display_name="Alice A.",
                first_name="Alice",
                last_name="Aardvark",
                avatar_url="https://example.com/a.png",
                email="alice@example.com",
            ),
        ),
        hs.key,
    )
    assert (claims.display_name, claims.first_name, claims.last_name) == (
        "Alice A.",
        "Alice",
        "Aardvark",
    )
    assert claims.avatar_url == "https://example.com/a.png"
    assert claims.email == "alice@example.com"


def test_name_is_the_display_name_fallback(hs: Signer) -> None:
    assert verify(token_for(hs, good_claims(name="Al")), hs.key).display_name == "Al"
    both = good_claims(name="Al", display_name="Alice")
    assert verify(token_for(hs, both), hs.key).display_name == "Alice"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("display_name", "x" * 129),
        ("display_name", "a\x00b"),
        ("display_name", 5),
        ("first_name", ["a"]),
        ("last_name", "\x1b[31m"),
        ("avatar_url", "javascript:alert(1)"),
        ("avatar_url", "data:image/png;base64,AAAA"),
        ("avatar_url", "//evil.example/a.png"),
        ("avatar_url", "https://x/" + "a" * 1020),
    ],
)
def test_bad_profile_claims_are_claim_invalid(hs: Signer, claim: str, value: object) -> None:
    error = rejected(lambda: verify(token_for(hs, good_claims(**{claim: value})), hs.key))
    assert error.reason is TokenRejection.CLAIM_INVALID
    assert error.data["claim"] == claim


# --- jti -----------------------------------------------------------------------------------


def test_jti_is_read(hs: Signer) -> None:
    assert verify(token_for(hs, {"sub": "a", "iat": NOW, "jti": "j-1"}), hs.key, NO_NONCE).jti


@pytest.mark.parametrize("jti", ["", "j" * 257, 5, ["j"], True, "j\x00", "j\n", "\x7f"])
def test_bad_jti_is_claim_invalid(hs: Signer, jti: object) -> None:
    token = token_for(hs, {"sub": "a", "iat": NOW, "jti": jti})
    assert reason_of(token, hs, NO_NONCE) is TokenRejection.CLAIM_INVALID


def test_jti_with_a_lone_surrogate_is_claim_invalid(hs: Signer) -> None:
    """It would reach the used_jtis table, which PostgreSQL cannot store (a 500)."""
    body = f'{{"sub":"a","iat":{NOW},"jti":"\\ud800"}}'.encode()
    token = forge(header_for(hs), body, signer=hs)
    assert reason_of(token, hs, NO_NONCE) is TokenRejection.CLAIM_INVALID


# --- 4, 5, 20. signature forgeries ---------------------------------------------------------


def _es_parts(es: Signer) -> tuple[str, str, int, int]:
    head, body, sig = token_for(es).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    return head, body, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


@pytest.mark.parametrize("r", [0, 1, P256_ORDER - 1, P256_ORDER])
@pytest.mark.parametrize("s", [0, 1, P256_ORDER - 1, P256_ORDER])
def test_ecdsa_psychic_signatures_are_refused(es: Signer, r: int, s: int) -> None:
    """CVE-2022-21449 and Wycheproof's r, s ∈ {0, 1, n-1, n}."""
    head, body, _, _ = _es_parts(es)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert reason_of(f"{head}.{body}.{b64u(sig)}", es) is TokenRejection.SIGNATURE_INVALID


def test_ecdsa_der_encoded_signature_is_refused(es: Signer) -> None:
    head, body, r, s = _es_parts(es)
    assert verify(f"{head}.{body}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}", es.key)
    der = encode_dss_signature(r, s)
    assert reason_of(f"{head}.{body}.{b64u(der)}", es) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sig: sig + b"\x00",
        lambda sig: sig + b"\x00\x00",
        lambda sig: b"\x00" + sig,
        lambda sig: sig[:-1],
        lambda sig: sig[:32],
        lambda sig: sig[:32] + b"\x00" + sig[32:],
    ],
    ids=["trailing-zero", "two-trailing-zeros", "leading-zero", "short", "r-only", "r-zero-s"],
)
def test_ecdsa_signatures_of_the_wrong_length_are_refused(
    es: Signer, mangle: Callable[[bytes], bytes]
) -> None:
    head, body, sig = token_for(es).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    forged = f"{head}.{body}.{b64u(mangle(raw))}"
    assert reason_of(forged, es) is TokenRejection.SIGNATURE_INVALID


def test_malleated_ecdsa_signature_verifies_so_replay_keys_on_the_nonce(es: Signer) -> None:
    """(r, n-s) is a second valid signature over the same claims: a different token string
    for one login. chinwag therefore never deduplicates on token or signature bytes; the
    nonce (or jti) is the replay key, and both spellings carry the same one."""
    head, body, r, s = _es_parts(es)
    original = f"{head}.{body}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    malleated = (
        f"{head}.{body}.{b64u(r.to_bytes(32, 'big') + (P256_ORDER - s).to_bytes(32, 'big'))}"
    )
    assert original != malleated
    first, second = verify(original, es.key), verify(malleated, es.key)
    assert first.nonce == second.nonce == NONCE
    assert first == second


@pytest.mark.parametrize("alg", list(Alg))
def test_truncated_signature_is_refused(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    head, body, sig = token_for(signer).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    assert reason_of(f"{head}.{body}.{b64u(raw[:-1])}", signer) is TokenRejection.SIGNATURE_INVALID
    # jwt_tool's "cut the last 4 characters": either not canonical or a bad signature.
    assert reason_of(f"{head}.{body}.{sig[:-4]}", signer) in {
        TokenRejection.MALFORMED,
        TokenRejection.SIGNATURE_INVALID,
    }


@pytest.mark.parametrize("alg", list(Alg))
def test_tampered_payload_is_refused(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    head, _, sig = token_for(signer).split(".")
    body = b64u(compact_json(good_claims(sub="mallory")))
    assert reason_of(f"{head}.{body}.{sig}", signer) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("alg", list(Alg))
def test_tampered_header_is_refused(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    _, body, sig = token_for(signer).split(".")
    head = b64u(compact_json({"alg": alg.value, "kid": KID}))  # typ dropped
    assert reason_of(f"{head}.{body}.{sig}", signer) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("alg", list(Alg))
def test_signature_by_another_key_of_the_same_type_is_refused(
    signers: dict[Alg, Signer], alg: Alg
) -> None:
    other = make_signer(alg)
    if alg is Alg.HS256:
        other = Signer(alg, b"\x08" * 32, other.key)
    assert reason_of(token_for(other), signers[alg]) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("secret", [b"", b"secret", b"your-256-bit-secret", b"\x00" * 32])
def test_hs256_with_guessable_secrets_is_refused(hs: Signer, secret: bytes) -> None:
    token = forge(header_for(hs), good_claims(), sign_alg=Alg.HS256, sign_key=secret)
    assert reason_of(token, hs) is TokenRejection.SIGNATURE_INVALID


@pytest.mark.parametrize("alg", [Alg.RS256, Alg.PS256])
def test_rsa_signature_edge_values_are_refused(signers: dict[Alg, Signer], alg: Alg) -> None:
    signer = signers[alg]
    n = signer.private.public_key().public_numbers().n
    head, body, _ = token_for(signer).split(".")
    for value in (0, 1, n - 1, n, n + 1):
        sig = value.to_bytes(256 if value < 2**2048 else 257, "big")
        assert reason_of(f"{head}.{body}.{b64u(sig)}", signer) is TokenRejection.SIGNATURE_INVALID


def test_eddsa_signature_edge_values_are_refused(signers: dict[Alg, Signer]) -> None:
    signer = signers[Alg.EDDSA]
    head, body, sig = token_for(signer).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    for forged in (bytes(64), b"\xff" * 64, raw[:32] + bytes(32), raw + b"\x00", raw[:63]):
        assert reason_of(f"{head}.{body}.{b64u(forged)}", signer) is (
            TokenRejection.SIGNATURE_INVALID
        )


# --- the property: nothing but InvalidIdentityToken ever escapes ----------------------------

_B64_TEXT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_CLAIM_NAMES = st.sampled_from(
    [
        "sub",
        "prn",
        "external_id",
        "externalId",
        "email",
        "iat",
        "exp",
        "nbf",
        "iss",
        "aud",
        "nce",
        "jti",
        "display_name",
        "name",
        "avatar_url",
        "first_name",
        "last_name",
        "x",
    ]
)


def _only_token_errors(token: object, key: TokenKey | None = None) -> None:
    try:
        parsed = parse_identity_token(token)
        verify_identity_token(parsed, key=key, policy=POLICY, now=NOW)
    except InvalidIdentityToken:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_only_raises_invalid_identity_token(text: str) -> None:
    _only_token_errors(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=5))
def test_any_base64_segments_only_raise_invalid_identity_token(segments: list[bytes]) -> None:
    _only_token_errors(".".join(b64u(s) for s in segments))


@settings(max_examples=300, deadline=None)
@given(st.lists(_B64_TEXT | st.text(max_size=20), min_size=3, max_size=3))
def test_any_three_segments_only_raise_invalid_identity_token(segments: list[str]) -> None:
    _only_token_errors(".".join(segments))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "cty", "jku"]), _JSON),
    claims=st.dictionaries(_CLAIM_NAMES | st.text(max_size=5), _JSON, max_size=8),
)
def test_any_json_header_and_claims_only_raise_invalid_identity_token(
    hs: Signer, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    _only_token_errors(forge(header, claims, signer=hs), hs.key)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(claims=st.dictionaries(_CLAIM_NAMES, _JSON | st.integers(NOW - 2000, NOW + 2000)))
def test_any_signed_claims_verify_or_raise_invalid_identity_token(
    hs: Signer, claims: dict[str, Any]
) -> None:
    token = forge(header_for(hs), claims, signer=hs)
    try:
        result = verify(token, hs.key, NO_NONCE)
    except InvalidIdentityToken:
        return
    # Whatever got through satisfies the rules.
    assert type(result.issued_at) is int
    assert abs(result.issued_at - NOW) <= 900 or result.nonce is not None
    assert result.user_id is not None or result.email is not None
    for value in (result.user_id, result.email, result.display_name, result.jti):
        if value is not None:
            value.encode("utf-8")  # no lone surrogates
            assert not any(ord(c) < 32 or ord(c) == 127 for c in value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_raw_header_and_payload_bytes_only_raise_invalid_identity_token(
    header: bytes, payload: bytes
) -> None:
    _only_token_errors(forge(header, payload, signature=b"\x01" * 32))


# --- the documentation lists every reason ---------------------------------------------------


def test_docs_reason_table_lists_every_rejection_reason() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "identity-tokens.md"
    section = doc.read_text().split("## When chinwag says no", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {reason.value for reason in TokenRejection}
