"""examples/identity_service: accounts, argon2 sign-in with rate limits, chat identity tokens
signed with a key made by ``chinwag keys generate --json``, used against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from examples.identity_service.app import Config, create_service
from examples.identity_service.cookie import COOKIE_NAME
from examples.identity_service.cors import parse_origins
from examples.identity_service.tokens import KeyFileError, SigningKey, load_signing_key

from chinwag.core.keys import Alg, generate_key_pair
from tests.support import RunningServer, get_nonce

ALICE = {"username": "alice", "password": "correct horse battery", "display_name": "Alice"}
CHAT = "https://chat.example"
"""The one chinwag origin the ``identity`` fixture's service answers CORS for."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _chinwag_json(database_url: str, *args: str) -> dict[str, str]:
    """A ``chinwag … --json`` command in a child process, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "chinwag.cli.launcher", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "CHINWAG_DATABASE_URL": database_url},
    )
    data: dict[str, str] = json.loads(result.stdout)
    return data


def _write_key_file(path: Path, data: dict[str, str], mode: int = 0o600) -> Path:
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


async def _generated_key(server: RunningServer, tmp_path: Path) -> SigningKey:
    """A production app and an ES256 key, made with the CLI; the key kept in a 0600 file."""
    url = server.settings.database_url
    app = await asyncio.to_thread(_chinwag_json, url, "apps", "create", "shop", "--production")
    generated = await asyncio.to_thread(
        _chinwag_json, url, "keys", "generate", app["app_id"], "--alg", "ES256"
    )
    return load_signing_key(_write_key_file(tmp_path / "key.json", generated), app["app_id"])


@pytest.fixture
def offline_key(tmp_path: Path) -> SigningKey:
    pair = generate_key_pair(Alg.ES256)
    data = {"kid": "key_test", "alg": "ES256", "private_key_pem": pair.private_key_pem}
    return load_signing_key(_write_key_file(tmp_path / "key.json", data), "app")


@pytest.fixture
def service_clock() -> Clock:
    return Clock()


@pytest.fixture
async def identity(
    offline_key: SigningKey, tmp_path: Path, service_clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    service = create_service(
        Config(
            key=offline_key,
            database=tmp_path / "users.db",
            clock=service_clock,
            chat_origins=frozenset({CHAT}),
        )
    )
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as http:
        yield http


async def _sign_in(identity: httpx.AsyncClient, password: str = ALICE["password"]) -> str:
    answer = await identity.post("/signin", json={"username": "alice", "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def test_a_signed_in_user_opens_a_chat_session_that_ends_at_the_token_s_exp(
    server: RunningServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    key = await _generated_key(server, tmp_path)
    service = create_service(Config(key=key, database=tmp_path / "users.db"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service), base_url="http://identity"
    ) as identity:
        assert (await identity.post("/signup", json=ALICE)).status_code == 201
        access = await _sign_in(identity)
        nonce = await get_nonce(client, key.app_id)
        issued = await identity.post(
            "/chat_token", json={"nonce": nonce}, headers={"Authorization": f"Bearer {access}"}
        )
    assert issued.status_code == 200, issued.text
    body = issued.json()
    session = await client.post(
        "/v1/sessions", json={"app_id": key.app_id, "identity_token": body["identity_token"]}
    )
    assert session.status_code == 201, session.text
    assert session.json()["user"]["user_id"] == "alice"
    assert session.json()["user"]["display_name"] == "Alice"
    assert session.json()["expires_at"] == pytest.approx(body["expires_at"])


async def test_a_wrong_password_and_an_unknown_user_get_the_same_refusal(
    identity: httpx.AsyncClient,
) -> None:
    await identity.post("/signup", json=ALICE)
    wrong = await identity.post("/signin", json={"username": "alice", "password": "guess-guess"})
    unknown = await identity.post("/signin", json={"username": "bob", "password": "guess-guess"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["id"] == "wrong_credentials"


async def test_sign_in_is_rate_limited_per_username_then_recovers(
    identity: httpx.AsyncClient, service_clock: Clock
) -> None:
    await identity.post("/signup", json=ALICE)
    for _ in range(5):
        await identity.post("/signin", json={"username": "alice", "password": "wrong-wrong"})
    limited = await identity.post(
        "/signin", json={"username": "alice", "password": ALICE["password"]}
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["id"] == "rate_limited"
    assert int(limited.headers["retry-after"]) == 60
    service_clock.now += 60
    await _sign_in(identity)


async def test_sign_in_is_rate_limited_per_address_across_usernames(
    identity: httpx.AsyncClient,
) -> None:
    answers = [
        (await identity.post("/signin", json={"username": f"u{i}", "password": "x"})).status_code
        for i in range(21)
    ]
    assert answers == [401] * 20 + [429]


async def test_signing_out_ends_the_access_token(identity: httpx.AsyncClient) -> None:
    await identity.post("/signup", json=ALICE)
    headers = {"Authorization": f"Bearer {await _sign_in(identity)}"}
    assert (await identity.post("/chat_token", json={"nonce": "n"}, headers=headers)).is_success
    assert (await identity.post("/signout", headers=headers)).status_code == 204
    refused = await identity.post("/chat_token", json={"nonce": "n"}, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["id"] == "unauthenticated"


async def test_a_chat_token_never_outlives_the_sign_in(
    identity: httpx.AsyncClient, service_clock: Clock
) -> None:
    await identity.post("/signup", json=ALICE)
    answer = await identity.post(
        "/signin", json={"username": "alice", "password": ALICE["password"]}
    )
    signed_in_until = answer.json()["expires_at"]
    service_clock.now = signed_in_until - 100
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    issued = await identity.post("/chat_token", json={"nonce": "n"}, headers=headers)
    assert issued.json()["expires_at"] == int(signed_in_until)


@pytest.mark.parametrize(
    ("body", "status", "error_id"),
    [
        (ALICE, 409, "username_taken"),
        ({"username": "Bad Name!", "password": "long enough pw"}, 400, "invalid_username"),
        ({"username": "carol", "password": "short"}, 400, "weak_password"),
        ({"username": "carol"}, 400, "invalid_request"),
    ],
)
async def test_sign_up_refusals_are_clean_4xx(
    identity: httpx.AsyncClient, body: dict[str, str], status: int, error_id: str
) -> None:
    await identity.post("/signup", json=ALICE)
    answer = await identity.post("/signup", json=body)
    assert answer.status_code == status
    assert answer.json()["error"]["id"] == error_id


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    pair = generate_key_pair(Alg.ES256)
    data = {"kid": "k", "alg": "ES256", "private_key_pem": pair.private_key_pem}
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_signing_key(_write_key_file(tmp_path / "key.json", data, 0o644), "app")
    with pytest.raises(KeyFileError, match="keys generate"):
        load_signing_key(_write_key_file(tmp_path / "hs.json", {"alg": "HS256"}), "app")


def test_the_user_database_is_owner_only(offline_key: SigningKey, tmp_path: Path) -> None:
    create_service(Config(key=offline_key, database=tmp_path / "users.db"))
    assert (tmp_path / "users.db").stat().st_mode & 0o077 == 0


async def _cookie_sign_in(identity: httpx.AsyncClient) -> str:
    """Sign alice up and in as the sign-in page does; the cookie's Set-Cookie line."""
    await identity.post("/signup", json=ALICE)
    answer = await identity.post(
        "/signin", json={"username": "alice", "password": ALICE["password"], "cookie": True}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == "alice"
    assert "access_token" not in answer.json()  # the page's script never holds the token
    return answer.headers["set-cookie"]


async def test_the_sign_in_page_s_cookie_is_httponly_lax_and_secure_over_https(
    identity: httpx.AsyncClient,
) -> None:
    attributes = (await _cookie_sign_in(identity)).lower().split("; ")
    assert attributes[0].startswith(f"{COOKIE_NAME}=")
    assert {"httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert "secure" not in attributes
    identity.base_url = httpx.URL("https://identity")
    secure = await identity.post(
        "/signin", json={"username": "alice", "password": ALICE["password"], "cookie": True}
    )
    assert "secure" in secure.headers["set-cookie"].lower().split("; ")


async def test_the_cookie_vouches_for_chat_tokens_and_signing_out_clears_it(
    identity: httpx.AsyncClient,
) -> None:
    await _cookie_sign_in(identity)
    issued = await identity.post("/chat_token", json={"app_id": "app", "nonce": "n"})
    assert issued.status_code == 200, issued.text
    assert (await identity.post("/signout", json={})).status_code == 204
    assert COOKIE_NAME not in identity.cookies
    assert (await identity.post("/chat_token", json={"nonce": "n"})).status_code == 401


async def test_a_bearer_token_wins_over_the_cookie(identity: httpx.AsyncClient) -> None:
    await _cookie_sign_in(identity)
    headers = {"Authorization": "Bearer not-a-token"}
    refused = await identity.post("/chat_token", json={"nonce": "n"}, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["id"] == "unauthenticated"


async def test_a_cookie_request_that_a_cross_site_form_could_send_is_refused(
    identity: httpx.AsyncClient,
) -> None:
    await _cookie_sign_in(identity)
    text_plain = {"content-type": "text/plain"}  # a <form enctype="text/plain"> can send JSON
    for refused in [
        await identity.post("/chat_token", content='{"nonce": "n"}', headers=text_plain),
        await identity.post("/chat_token", data={"nonce": "n"}),  # a urlencoded <form>
        await identity.post("/signout"),
        await identity.post(  # a login CSRF: the victim signed in as the attacker
            "/signin",
            content=json.dumps({"username": "alice", "password": "x" * 10, "cookie": True}),
            headers=text_plain,
        ),
    ]:
        assert refused.status_code == 415, refused.request.url
        assert refused.json()["error"]["id"] == "json_required"
    assert (await identity.post("/chat_token", json={"nonce": "n"})).status_code == 200


async def test_a_token_for_another_app_is_refused(identity: httpx.AsyncClient) -> None:
    await identity.post("/signup", json=ALICE)
    headers = {"Authorization": f"Bearer {await _sign_in(identity)}"}
    body = {"app_id": "someone-else", "nonce": "n"}
    refused = await identity.post("/chat_token", json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "id": "wrong_app",
        "message": "This service signs in to app app, not someone-else.",
    }


async def test_cors_names_only_the_configured_chat_origin(identity: httpx.AsyncClient) -> None:
    await identity.post("/signup", json=ALICE)
    bearer = {"Authorization": f"Bearer {await _sign_in(identity)}"}
    allowed = await identity.post(
        "/chat_token", json={"nonce": "n"}, headers=bearer | {"origin": CHAT}
    )
    assert allowed.headers["access-control-allow-origin"] == CHAT
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["vary"] == "Origin"
    refusal = await identity.post("/chat_token", json={"nonce": "n"}, headers={"origin": CHAT})
    assert refusal.status_code == 401  # the page can read why, not a bare network error
    assert refusal.headers["access-control-allow-origin"] == CHAT
    for other in ("https://evil.example", f"{CHAT}:8443", "http://chat.example", "null"):
        answer = await identity.post(
            "/chat_token", json={"nonce": "n"}, headers=bearer | {"origin": other}
        )
        assert "access-control-allow-origin" not in answer.headers, other


async def test_the_preflight_allows_the_chat_origin_s_json_post_only(
    identity: httpx.AsyncClient,
) -> None:
    def preflight(
        origin: str, method: str = "POST", headers: str = "content-type"
    ) -> dict[str, str]:
        return {
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": headers,
        }

    allowed = await identity.options("/chat_token", headers=preflight(CHAT))
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == CHAT
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert allowed.headers["access-control-allow-headers"] == "Content-Type"
    for headers, error_id in [
        (preflight("https://evil.example"), "origin_not_allowed"),
        (preflight(CHAT, method="PUT"), "cors_not_allowed"),
        (preflight(CHAT, headers="content-type, authorization"), "cors_not_allowed"),
    ]:
        refused = await identity.options("/chat_token", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["id"] == error_id
        assert "access-control-allow-origin" not in refused.headers


async def test_a_method_a_route_does_not_take_is_a_json_405(identity: httpx.AsyncClient) -> None:
    answer = await identity.get("/chat_token")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"]["id"] == "method_not_allowed"


@pytest.mark.parametrize("value", ["*", "https://chat.example/", "chat.example", "https://"])
def test_chat_origins_must_be_exact_origins(value: str) -> None:
    with pytest.raises(ValueError, match="IDENTITY_CHAT_ORIGINS"):
        parse_origins(f"https://ok.example, {value}")
