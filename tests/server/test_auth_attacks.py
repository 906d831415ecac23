"""The attack classes over HTTP: each is a 401 with a stable reason, never a 500, never a
session, and never uses up the victim's nonce. Fuzzing at the end: random bodies and
headers against every auth endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.core.keys import Alg, hmac_secret_bytes
from tests.core.test_identity_tokens import P256_ORDER, b64u, compact_json, forge
from tests.support import AppFixture, RunningServer, get_nonce, make_app

Json = dict[str, Any]


def private_of(app: AppFixture) -> Any:
    if app.secret is not None:
        return hmac_secret_bytes(app.secret)
    assert app.private_key_pem is not None
    return serialization.load_pem_private_key(app.private_key_pem.encode(), password=None)


def craft(app: AppFixture, header: Json | bytes, claims: Json | bytes, **kw: Any) -> str:
    if "signature" in kw:
        return forge(header, claims, signature=kw["signature"])
    return forge(
        header, claims, sign_alg=kw.get("alg", app.alg), sign_key=kw.get("key", private_of(app))
    )


async def submit(client: httpx.AsyncClient, app_id: str, token: str) -> httpx.Response:
    return await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})


def reason(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["id"] == "invalid_identity_token"
    return str(response.json()["error"]["data"]["reason"])


class Victim:
    """An app, a nonce, and the proof at the end that the nonce survived the attack."""

    def __init__(
        self, server: RunningServer, client: httpx.AsyncClient, app: AppFixture, nonce: str
    ) -> None:
        self.server, self.client, self.app, self.nonce = server, client, app, nonce

    @property
    def header(self) -> Json:
        return {"alg": self.app.alg.value, "kid": self.app.kid}

    def claims(self, **extra: Any) -> Json:
        return {"sub": "alice", "nce": self.nonce, "iat": int(self.server.clock.now()), **extra}

    async def attempt(self, token: str) -> str:
        return reason(await submit(self.client, self.app.app_id, token))

    async def nonce_survived(self) -> None:
        token = self.app.token(self.claims())
        response = await submit(self.client, self.app.app_id, token)
        assert response.status_code == 201, response.text


@pytest.fixture(params=[Alg.ES256, Alg.RS256])
async def victim(
    request: pytest.FixtureRequest, server: RunningServer, client: httpx.AsyncClient
) -> Victim:
    app = await make_app(server.services, alg=request.param)
    return Victim(server, client, app, await get_nonce(client, app.app_id))


# --- 1, 2, 7: signature and key attacks ----------------------------------------------------


async def test_alg_none(victim: Victim) -> None:
    for alg in ("none", "None", "NONE", "nOnE"):
        for sig in (b"", b"x"):
            token = craft(
                victim.app, {"alg": alg, "kid": victim.app.kid}, victim.claims(), signature=sig
            )
            assert await victim.attempt(token) == "signature_invalid"
    await victim.nonce_survived()


async def test_hs256_with_the_public_key_as_secret(victim: Victim) -> None:
    public = private_of(victim.app).public_key()
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]
    for secret in secrets:
        token = craft(
            victim.app,
            {"alg": "HS256", "kid": victim.app.kid},
            victim.claims(),
            alg=Alg.HS256,
            key=secret,
        )
        assert await victim.attempt(token) == "signature_invalid"
    await victim.nonce_survived()


async def test_kid_injection(victim: Victim) -> None:
    for kid in ("../../../../dev/null", "x' UNION SELECT '1';--", "|sleep 10", "", "%", "*"):
        for secret in (b"", b"1"):
            token = craft(
                victim.app, {"alg": "HS256", "kid": kid}, victim.claims(), alg=Alg.HS256, key=secret
            )
            assert await victim.attempt(token) == "signature_invalid"
    await victim.nonce_survived()


async def test_kid_of_another_apps_key(
    victim: Victim, server: RunningServer, client: httpx.AsyncClient
) -> None:
    other = await make_app(server.services, alg=victim.app.alg)
    token = other.token(victim.claims())
    assert await victim.attempt(token) == "signature_invalid"
    await victim.nonce_survived()


async def test_embedded_and_remote_keys(victim: Victim) -> None:
    attacker = await make_app(victim.server.services, alg=victim.app.alg)
    public = json.loads(
        json.dumps({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})
    )  # shape only: the header is refused before any key is read
    for name, value in (
        ("jwk", public),
        ("jku", "http://127.0.0.1:1/jwks.json"),
        ("x5u", "http://127.0.0.1:1/c.pem"),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("b64", False),
        ("zip", "DEF"),
    ):
        token = craft(attacker, {**victim.header, name: value}, victim.claims())
        assert await victim.attempt(token) == "unsupported_header"
    await victim.nonce_survived()


# --- 5: malleability and replay -------------------------------------------------------------


async def test_malleated_ecdsa_signature_cannot_replay_a_login(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, alg=Alg.ES256)
    nonce = await get_nonce(client, app.app_id)
    token = app.token({"sub": "alice", "nce": nonce, "iat": int(server.clock.now())})
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    s = int.from_bytes(raw[32:], "big")
    twin = f"{head}.{body}.{b64u(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert twin != token
    assert (await submit(client, app.app_id, token)).status_code == 201
    assert reason(await submit(client, app.app_id, twin)) == "nonce_used"


async def test_non_canonical_nonce_spelling_cannot_open_a_second_session(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Before the fix the four spellings of one nonce opened four sessions."""
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    now = int(server.clock.now())
    assert (
        await submit(client, app.app_id, app.token({"sub": "a", "nce": nonce, "iat": now}))
    ).status_code == 201
    for bits in (1, 2, 3):
        twin = nonce[:-1] + alphabet[alphabet.index(nonce[-1]) ^ bits]
        response = await submit(
            client, app.app_id, app.token({"sub": "a", "nce": twin, "iat": now})
        )
        assert reason(response) == "nonce_not_found"


async def test_token_for_app_a_replayed_at_app_b(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    a = await make_app(server.services)
    b = await make_app(server.services)
    nonce = await get_nonce(client, a.app_id)
    token = a.token({"sub": "alice", "nce": nonce, "iat": int(server.clock.now())})
    assert reason(await submit(client, b.app_id, token)) == "signature_invalid"
    assert (await submit(client, a.app_id, token)).status_code == 201


# --- 10, 12, 13, 14, 21: parsing attacks -----------------------------------------------------


async def test_parser_attacks(victim: Victim) -> None:
    app = victim.app
    head = b64u(compact_json(victim.header))
    body = b64u(compact_json(victim.claims()))
    nonce, now = victim.nonce, int(victim.server.clock.now())
    cases: dict[str, str] = {
        "jwe": ".".join([head, "a", "b", "c", "d"]),
        "json-serialisation": json.dumps({"protected": head, "payload": body, "signature": ""}),
        "two-segments": f"{head}.{body}",
        "padding": craft(app, victim.header, victim.claims(x="ab")).replace(".", "=.", 1),
        "space": f"{head} .{body}.AAAA",
        "nested": craft(app, victim.header, b'{"sub":"a","x":' + b"[" * 2500 + b"]" * 2500 + b"}"),
        "nan": craft(app, victim.header, f'{{"sub":"a","nce":"{nonce}","iat":NaN}}'.encode()),
        "dup-sub": craft(
            app, victim.header, f'{{"sub":"a","sub":"b","nce":"{nonce}","iat":{now}}}'.encode()
        ),
        "dup-alg": craft(
            app,
            b'{"alg":"none","alg":"'
            + app.alg.value.encode()
            + b'","kid":"'
            + app.kid.encode()
            + b'"}',
            victim.claims(),
        ),
        "utf16": craft(app, victim.header, json.dumps(victim.claims()).encode("utf-16")),
        "bom": craft(app, victim.header, b"\xef\xbb\xbf" + compact_json(victim.claims())),
        "digits": craft(app, victim.header, f'{{"sub":"a","iat":{"9" * 5000}}}'.encode()),
    }
    for name, token in cases.items():
        assert await victim.attempt(token) == "malformed", name
    assert await victim.attempt("x" * 9000) == "token_too_large"
    await victim.nonce_survived()


async def test_claim_type_attacks(victim: Victim) -> None:
    app, nonce, now = victim.app, victim.nonce, int(victim.server.clock.now())
    raw = [
        f'{{"sub":"a","nce":"{nonce}","iat":1e400}}',
        f'{{"sub":"a","nce":"{nonce}","iat":{now},"exp":1e400}}',
        f'{{"sub":"a","nce":"{nonce}","iat":"{now}"}}',
        f'{{"sub":"a","nce":"{nonce}","iat":true}}',
        f'{{"sub":"a","nce":"{nonce}","iat":{now}.5}}',
        f'{{"sub":"a","nce":"{nonce}","iat":{now * 1000}}}',
        f'{{"sub":"\\ud800","nce":"{nonce}","iat":{now}}}',
        f'{{"sub":"a\\u0000","nce":"{nonce}","iat":{now}}}',
        f'{{"sub":"a","nce":"{nonce}","iat":{now},"display_name":"\\udfff"}}',
        f'{{"sub":"a","nce":"{nonce}","iat":{now},"email":"a\\ud800@x.y"}}',
        f'{{"sub":"a","nce":{json.dumps([nonce])},"iat":{now}}}',
    ]
    for body in raw:
        assert await victim.attempt(craft(app, victim.header, body.encode())) == "claim_invalid"
    await victim.nonce_survived()


async def test_lone_surrogate_header_name_is_401_not_500(victim: Victim) -> None:
    header = json.dumps(victim.header)[:-1] + ', "\\ud800": 1}'
    token = craft(victim.app, header.encode(), victim.claims())
    assert await victim.attempt(token) == "unsupported_header"


async def test_jti_that_the_database_cannot_store_is_401_not_500(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """NUL and lone surrogates in jti reached the used_jtis INSERT (a 500 on PostgreSQL)."""
    app = await make_app(server.services, require_nonce=False)
    now = int(server.clock.now())
    for jti in ("\\u0000", "a\\ud800"):
        body = f'{{"sub":"a","iat":{now},"jti":"{jti}"}}'.encode()
        token = craft(app, {"alg": app.alg.value, "kid": app.kid}, body)
        assert reason(await submit(client, app.app_id, token)) == "claim_invalid"


# --- fuzzing: nothing reaches a 500 ---------------------------------------------------------

_ENDPOINTS = [
    ("POST", "/v1/nonces"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sessions/anonymous"),
    ("POST", "/v1/dev/identity_tokens"),
    ("GET", "/v1/me"),
    ("DELETE", "/v1/sessions/current"),
]
_FIELDS = ["app_id", "identity_token", "user_id", "nonce", "display_name", "anonymous_data"]
_HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80
)


def _fuzz_strategies(app_id: str, token: str, nonce: str, session: str, *, nul: bool) -> Any:
    nul_free = st.text(max_size=40).filter(lambda t: nul or "\x00" not in t)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | nul_free
        | st.sampled_from([app_id, token, nonce, session, "a.b.c", "\ud800", "\x01", "x" * 300])
        | st.sampled_from(["\x00", f"{app_id}\x00"] if nul else ["\x02"])
    )
    values = st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=6,
    )
    fields = {name: values for name in _FIELDS[1:]}
    bodies = st.fixed_dictionaries({"app_id": values}, optional=fields) | st.dictionaries(
        st.sampled_from(_FIELDS) | st.text(max_size=6), values, max_size=6
    )
    raw = st.binary(max_size=200)
    headers = st.dictionaries(
        st.sampled_from(["Authorization", "Chinwag-App-Id", "Content-Type", "Content-Length"]),
        st.sampled_from([f"Bearer {session}", app_id, "application/json", "Bearer", "0"])
        | _HEADER_TEXT,
        max_size=3,
    )
    return st.sampled_from(_ENDPOINTS), bodies | values | raw, headers


async def test_random_requests_never_produce_a_500(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, allow_anonymous=True)
    nonce = await get_nonce(client, app.app_id)
    token = app.token(
        {"sub": "alice", "nce": await get_nonce(client, app.app_id), "iat": int(server.clock.now())}
    )
    anon = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    session = anon.json()["session_token"]
    nul = True
    endpoints, bodies, headers = _fuzz_strategies(app.app_id, token, nonce, session, nul=nul)
    failures: list[str] = []

    def fuzz() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            @settings(max_examples=250, deadline=None, database=None)
            @given(endpoints, bodies, headers)
            def one(endpoint: tuple[str, str], body: Any, extra: dict[str, str]) -> None:
                method, path = endpoint
                kwargs: dict[str, Any] = {
                    "headers": {k: v for k, v in extra.items() if k != "Content-Length"}
                }
                if method != "GET":
                    if isinstance(body, bytes):
                        kwargs["content"] = body
                    else:
                        kwargs["content"] = json.dumps(body).encode()
                        kwargs["headers"].setdefault("Content-Type", "application/json")
                response = http.request(method, path, **kwargs)
                if response.status_code >= 500:
                    failures.append(f"{method} {path} {body!r:.200} {extra} -> {response.text}")
                assert response.status_code < 500, failures[-1]
                if response.status_code >= 400:
                    assert response.json()["error"]["id"]

            one()

    await asyncio.to_thread(fuzz)
    assert not failures


@pytest.mark.parametrize(
    "path", ["/v1/nonces", "/v1/sessions", "/v1/sessions/anonymous", "/v1/dev/identity_tokens"]
)
async def test_nul_in_app_id_is_404_not_500(
    server: RunningServer, client: httpx.AsyncClient, path: str
) -> None:
    body = {"app_id": "\x00", "identity_token": "a.b.c", "user_id": "u", "nonce": "n"}
    response = await client.post(path, json=body)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["id"] == "app_not_found"
