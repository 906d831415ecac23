"""Every identity-token rule and session rule over a real loopback server (SQLite and
PostgreSQL): each ``data.reason`` with its status, nonce bookkeeping, session lifetime,
the challenge, anonymous sessions, body limits and the auth rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chinwag.clock import ManualClock
from chinwag.core.errors import TokenRejection
from chinwag.core.identity_tokens import MAX_TOKEN_LENGTH
from chinwag.core.keys import Alg
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.settings import Settings
from chinwag.server.storage import apps as app_store
from tests.support import AppFixture, RunningServer, get_nonce, login, make_app, run_server, sign

Json = dict[str, Any]


async def submit(
    client: httpx.AsyncClient, app_id: str, token: str, **kwargs: Any
) -> httpx.Response:
    return await client.post(
        "/v1/sessions", json={"app_id": app_id, "identity_token": token}, **kwargs
    )


def assert_reason(response: httpx.Response, reason: TokenRejection) -> Json:
    assert response.status_code == 401, response.text
    error: Json = response.json()["error"]
    assert error["id"] == "invalid_identity_token"
    assert error["data"]["reason"] == reason.value, error
    return error


def claims(nonce: str | None, now: float, **extra: Any) -> Json:
    base: Json = {"sub": "alice", "iat": int(now)}
    if nonce is not None:
        base["nce"] = nonce
    return {**base, **extra}


# --- one HTTP case per documented reason -------------------------------------------------

Case = Callable[[RunningServer, httpx.AsyncClient], Awaitable[httpx.Response]]


async def _token_too_large(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    token = app.token(claims(nonce, now, pad="x" * MAX_TOKEN_LENGTH))
    return await submit(client, app.app_id, token)


async def _malformed(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    return await submit(client, app.app_id, "not.a-token")


async def _unsupported_header(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = sign_with_headers(app, claims(nonce, server.clock.now()), jku="https://x.test/j")
    return await submit(client, app.app_id, token)


async def _signature_invalid(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    other = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = sign(
        claims(nonce, server.clock.now()),
        kid=app.kid,
        alg=other.alg,
        private_key_pem=other.private_key_pem,
    )
    return await submit(client, app.app_id, token)


async def _claim_missing(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    return await submit(client, app.app_id, app.token({"sub": "alice", "nce": nonce}))


async def _claim_invalid(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    return await submit(client, app.app_id, app.token(claims(nonce, server.clock.now(), sub="")))


async def _expired(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    return await submit(client, app.app_id, app.token(claims(nonce, now, exp=int(now) - 61)))


async def _not_yet_valid(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    return await submit(client, app.app_id, app.token(claims(nonce, now, nbf=int(now) + 120)))


async def _issued_in_future(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    return await submit(client, app.app_id, app.token(claims(nonce, now, iat=int(now) + 120)))


async def _too_old(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services, require_nonce=False)
    now = server.clock.now()
    return await submit(client, app.app_id, app.token(claims(None, now, iat=int(now) - 16 * 60)))


async def _issuer_mismatch(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = app.token(claims(nonce, server.clock.now(), iss=app.app_id[:-1]))
    return await submit(client, app.app_id, token)


async def _audience_mismatch(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = app.token(claims(nonce, server.clock.now(), aud=["chinwag"]))
    return await submit(client, app.app_id, token)


async def _nonce_required(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    return await submit(client, app.app_id, app.token(claims(None, server.clock.now())))


async def _nonce_not_found(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    return await submit(client, app.app_id, app.token(claims("A" * 55, server.clock.now())))


async def _nonce_expired(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    server.clock.advance(600)
    return await submit(client, app.app_id, app.token(claims(nonce, server.clock.now())))


async def _nonce_used(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    first = await submit(client, app.app_id, app.token(claims(nonce, server.clock.now())))
    assert first.status_code == 201
    token = app.token(claims(nonce, server.clock.now(), sub="bob"))
    return await submit(client, app.app_id, token)


async def _jti_used(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services, require_nonce=False)
    now = server.clock.now()
    first = await submit(client, app.app_id, app.token(claims(None, now, jti="j1")))
    assert first.status_code == 201
    return await submit(client, app.app_id, app.token(claims(None, now, jti="j1", sub="bob")))


async def _user_conflict(server: RunningServer, client: httpx.AsyncClient) -> httpx.Response:
    app = await make_app(server.services, allow_anonymous=True)
    anon = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    assert anon.status_code == 201
    anon_id = anon.json()["user"]["user_id"]
    nonce = await get_nonce(client, app.app_id)
    return await submit(
        client, app.app_id, app.token(claims(nonce, server.clock.now(), sub=anon_id))
    )


CASES: dict[TokenRejection, Case] = {
    TokenRejection.TOKEN_TOO_LARGE: _token_too_large,
    TokenRejection.MALFORMED: _malformed,
    TokenRejection.UNSUPPORTED_HEADER: _unsupported_header,
    TokenRejection.SIGNATURE_INVALID: _signature_invalid,
    TokenRejection.CLAIM_MISSING: _claim_missing,
    TokenRejection.CLAIM_INVALID: _claim_invalid,
    TokenRejection.EXPIRED: _expired,
    TokenRejection.NOT_YET_VALID: _not_yet_valid,
    TokenRejection.ISSUED_IN_FUTURE: _issued_in_future,
    TokenRejection.TOO_OLD: _too_old,
    TokenRejection.ISSUER_MISMATCH: _issuer_mismatch,
    TokenRejection.AUDIENCE_MISMATCH: _audience_mismatch,
    TokenRejection.NONCE_REQUIRED: _nonce_required,
    TokenRejection.NONCE_NOT_FOUND: _nonce_not_found,
    TokenRejection.NONCE_EXPIRED: _nonce_expired,
    TokenRejection.NONCE_USED: _nonce_used,
    TokenRejection.JTI_USED: _jti_used,
    TokenRejection.USER_CONFLICT: _user_conflict,
}


def sign_with_headers(app: AppFixture, body: Json, **headers: Any) -> str:
    import jwt

    from chinwag.core.keys import hmac_secret_bytes

    key: Any = (
        hmac_secret_bytes(app.secret) if app.secret is not None else app.private_key_pem
    )  # PyJWT loads the PEM itself
    return jwt.encode(body, key, algorithm=app.alg.value, headers={"kid": app.kid, **headers})


@pytest.mark.parametrize("reason", list(TokenRejection))
async def test_every_reason_over_http(
    server: RunningServer, client: httpx.AsyncClient, reason: TokenRejection
) -> None:
    """A new reason without a case here fails this test: the list is the documentation."""
    response = await CASES[reason](server, client)
    error = assert_reason(response, reason)
    assert set(error) == {"id", "message", "data"}
    assert error["message"]


async def test_time_reasons_carry_server_time(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    for case in (_expired, _not_yet_valid, _issued_in_future, _too_old):
        error = (await case(server, client)).json()["error"]
        assert error["data"]["server_time"] == int(server.clock.now())


async def test_signature_failures_share_one_answer(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Unknown kid, disabled key, other key's signature: identical bodies (no oracle)."""
    app = await make_app(server.services)
    other = await make_app(server.services)
    now = server.clock.now()
    bodies = []
    for token in (
        app.token(claims("A" * 55, now), kid="key_unknown"),
        other.token(claims("A" * 55, now), kid=app.kid),
        other.token(claims("A" * 55, now), kid=other.kid),  # a real kid, of another app
    ):
        bodies.append((await submit(client, app.app_id, token)).json())
    await app_handlers.set_key_enabled(server.services, app.app_id, app.kid, False)
    bodies.append((await submit(client, app.app_id, app.token(claims("A" * 55, now)))).json())
    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["error"]["data"] == {"reason": "signature_invalid"}


# --- apps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/nonces", {}),
        ("/v1/sessions", {"identity_token": "a.b.c"}),
        ("/v1/sessions/anonymous", {}),
        ("/v1/dev/identity_tokens", {"user_id": "u", "nonce": "n"}),
    ],
)
async def test_unknown_app_is_404_app_not_found(
    client: httpx.AsyncClient, path: str, body: Json
) -> None:
    response = await client.post(
        path, json={"app_id": "00000000-0000-4000-8000-000000000000", **body}
    )
    assert response.status_code == 404
    assert response.json()["error"]["id"] == "app_not_found"


# --- anonymous sessions ------------------------------------------------------------------


async def test_anonymous_session_when_allowed(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, allow_anonymous=True)
    response = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["anonymous"] is True
    me = await client.get("/v1/me", headers=bearer(body["session_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["user_id"] == body["user"]["user_id"]


async def test_anonymous_session_refused_when_not_allowed(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, allow_anonymous=False)
    response = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    assert response.status_code == 403
    assert response.json()["error"]["id"] == "anonymous_not_allowed"


async def test_anonymous_user_ids_differ(server: RunningServer, client: httpx.AsyncClient) -> None:
    app = await make_app(server.services, allow_anonymous=True)
    ids = set()
    for _ in range(3):
        response = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
        ids.add(response.json()["user"]["user_id"])
    assert len(ids) == 3


async def test_anonymous_user_id_cannot_be_claimed_and_nonce_survives(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, allow_anonymous=True)
    anon = (await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})).json()
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    refused = await submit(
        client, app.app_id, app.token(claims(nonce, now, sub=anon["user"]["user_id"]))
    )
    assert_reason(refused, TokenRejection.USER_CONFLICT)
    # The conflict rolled back: the nonce is still good for a real user id.
    accepted = await submit(client, app.app_id, app.token(claims(nonce, now, sub="real")))
    assert accepted.status_code == 201, accepted.text


# --- sessions: lifetime, challenge, log-out --------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_session_lifetime_is_the_apps_without_exp(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, session_lifetime=3600)
    now = server.clock.now()
    session = await login(client, app, "alice", now)
    assert session["expires_at"] == pytest.approx(now + 3600)
    server.clock.advance(3599)
    assert (await client.get("/v1/me", headers=bearer(session["session_token"]))).status_code == 200
    server.clock.advance(1)
    denied = await client.get("/v1/me", headers=bearer(session["session_token"]))
    assert denied.status_code == 401
    assert denied.json()["error"]["id"] == "authentication_required"
    assert denied.json()["error"]["data"]["nonce"]


async def test_session_ends_at_the_identity_tokens_exp_when_sooner(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The leeway decides whether a token is accepted; it never lengthens the session."""
    app = await make_app(server.services, session_lifetime=3600)
    now = server.clock.now()
    exp = int(now) + 8
    session = await login(client, app, "alice", now, exp=exp)
    assert session["expires_at"] == exp
    server.clock.set(exp - 0.5)
    assert (await client.get("/v1/me", headers=bearer(session["session_token"]))).status_code == 200
    server.clock.set(exp)
    denied = await client.get("/v1/me", headers=bearer(session["session_token"]))
    assert denied.status_code == 401
    assert denied.json()["error"]["id"] == "authentication_required"


async def test_token_past_its_exp_is_refused_even_inside_the_leeway(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A session from it would be dead on arrival: refuse it, and keep the nonce usable."""
    app = await make_app(server.services)
    now = server.clock.now()
    nonce = await get_nonce(client, app.app_id)
    late = app.token(claims(nonce, now, iat=int(now) - 300, exp=int(now) - 30))
    refused = await submit(client, app.app_id, late)
    assert refused.status_code == 401
    assert refused.json()["error"]["data"]["reason"] == "expired"
    fresh = app.token(claims(nonce, now, exp=int(now) + 60))
    assert (await submit(client, app.app_id, fresh)).status_code == 201


async def test_session_keeps_the_app_lifetime_when_exp_is_later(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, session_lifetime=60)
    now = server.clock.now()
    session = await login(client, app, "alice", now, exp=int(now) + 86_400)
    assert session["expires_at"] == pytest.approx(now + 60)


async def test_challenge_nonce_logs_straight_back_in(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, session_lifetime=60)
    session = await login(client, app, "alice", server.clock.now())
    server.clock.advance(61)
    denied = await client.get("/v1/me", headers=bearer(session["session_token"]))
    data = denied.json()["error"]["data"]
    assert data["server_time"] == pytest.approx(server.clock.now())
    assert data["nonce_expires_at"] > server.clock.now()
    token = app.token(claims(data["nonce"], server.clock.now()))
    again = await submit(client, app.app_id, token)
    assert again.status_code == 201


async def test_log_out_kills_the_token_at_once(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    session = await login(client, app, "alice", server.clock.now())
    other = await login(client, app, "alice", server.clock.now())
    headers = bearer(session["session_token"])
    assert (await client.delete("/v1/sessions/current", headers=headers)).status_code == 204
    denied = await client.get("/v1/me", headers=headers)
    assert denied.status_code == 401
    assert denied.json()["error"]["data"]["nonce"]  # the app is known from the session
    again = await client.delete("/v1/sessions/current", headers=headers)
    assert again.status_code == 401
    # Only that session ended.
    assert (await client.get("/v1/me", headers=bearer(other["session_token"]))).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer  x",
        "Basic dXNlcjpwYXNz",
        "Bearer cws_x",
        "Bearer cws_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer not-a-token",
    ],
)
async def test_unknown_or_malformed_session_is_a_challenge(
    server: RunningServer, client: httpx.AsyncClient, authorization: str | None
) -> None:
    app = await make_app(server.services)
    headers = {} if authorization is None else {"Authorization": authorization}
    plain = await client.get("/v1/me", headers=headers)
    assert plain.status_code == 401
    assert plain.json()["error"]["id"] == "authentication_required"
    assert "nonce" not in plain.json()["error"]["data"]
    hinted = await client.get("/v1/me", headers={**headers, "Chinwag-App-Id": app.app_id})
    assert hinted.status_code == 401
    nonce = hinted.json()["error"]["data"]["nonce"]
    assert (
        await submit(client, app.app_id, app.token(claims(nonce, server.clock.now())))
    ).status_code == 201


async def test_unknown_app_hint_gives_a_challenge_without_nonce(client: httpx.AsyncClient) -> None:
    for hint in ("00000000-0000-4000-8000-000000000000", "x" * 500, "' OR 1=1 --"):
        response = await client.get("/v1/me", headers={"Chinwag-App-Id": hint})
        assert response.status_code == 401
        assert response.json()["error"]["data"] == {}


async def test_forged_secret_for_a_real_session_id_is_refused(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    session = await login(client, app, "alice", server.clock.now())
    token = session["session_token"]
    head, secret = token.split(".")
    forged = head + "." + ("A" if secret[0] != "A" else "B") + secret[1:]
    response = await client.get("/v1/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["error"]["id"] == "authentication_required"


async def test_session_token_in_the_url_is_not_accepted(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    session = await login(client, app, "alice", server.clock.now())
    response = await client.get("/v1/me", params={"session_token": session["session_token"]})
    assert response.status_code == 401


async def test_every_login_issues_a_fresh_token(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    tokens = {
        (await login(client, app, "alice", server.clock.now()))["session_token"] for _ in range(3)
    }
    assert len(tokens) == 3


async def test_session_token_is_not_stored_in_clear(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import select

    from chinwag.server.storage.schema import sessions

    app = await make_app(server.services)
    session = await login(client, app, "alice", server.clock.now())
    secret = session["session_token"].split(".", 1)[1]
    async with server.services.db.read() as conn:
        rows = (await conn.execute(select(sessions))).all()
    assert rows
    for row in rows:
        for value in row:
            assert secret not in str(value)
            if isinstance(value, bytes):
                assert secret.encode() not in value


# --- nonce bookkeeping ---------------------------------------------------------------------


async def test_failed_checks_do_not_consume_the_nonce(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    other = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    now = server.clock.now()
    failures = {
        TokenRejection.SIGNATURE_INVALID: other.token(claims(nonce, now), kid=app.kid),
        TokenRejection.EXPIRED: app.token(claims(nonce, now, exp=int(now) - 120)),
        TokenRejection.NOT_YET_VALID: app.token(claims(nonce, now, nbf=int(now) + 120)),
        TokenRejection.ISSUED_IN_FUTURE: app.token(claims(nonce, now, iat=int(now) + 120)),
        TokenRejection.ISSUER_MISMATCH: app.token(claims(nonce, now, iss="other")),
        TokenRejection.AUDIENCE_MISMATCH: app.token(claims(nonce, now, aud="other")),
        TokenRejection.CLAIM_INVALID: app.token(claims(nonce, now, sub="a\x00b")),
        TokenRejection.CLAIM_MISSING: app.token({"nce": nonce, "iat": int(now)}),
        TokenRejection.UNSUPPORTED_HEADER: sign_with_headers(app, claims(nonce, now), x5u="u"),
    }
    for reason, token in failures.items():
        assert_reason(await submit(client, app.app_id, token), reason)
    assert_reason(
        await submit(client, other.app_id, other.token(claims(nonce, now))),
        TokenRejection.NONCE_NOT_FOUND,
    )
    accepted = await submit(client, app.app_id, app.token(claims(nonce, now)))
    assert accepted.status_code == 201, accepted.text
    assert_reason(
        await submit(client, app.app_id, app.token(claims(nonce, now, sub="bob"))),
        TokenRejection.NONCE_USED,
    )


async def test_nonce_of_app_a_is_not_found_for_app_b(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    a = await make_app(server.services)
    b = await make_app(server.services)
    nonce = await get_nonce(client, a.app_id)
    response = await submit(client, b.app_id, b.token(claims(nonce, server.clock.now())))
    assert_reason(response, TokenRejection.NONCE_NOT_FOUND)
    assert (
        await submit(client, a.app_id, a.token(claims(nonce, server.clock.now())))
    ).status_code == 201


async def test_nonce_expiry_uses_the_server_clock(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    response = await client.post("/v1/nonces", json={"app_id": app.app_id})
    body = response.json()
    assert body["expires_at"] <= server.clock.now() + 600
    server.clock.set(body["expires_at"] - 1)
    ok = await submit(client, app.app_id, app.token(claims(body["nonce"], server.clock.now())))
    assert ok.status_code == 201
    nonce = await get_nonce(client, app.app_id)
    server.clock.advance(600)
    late = await submit(client, app.app_id, app.token(claims(nonce, server.clock.now())))
    assert_reason(late, TokenRejection.NONCE_EXPIRED)


async def test_same_token_twice_is_nonce_used(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = app.token(claims(nonce, server.clock.now()))
    assert (await submit(client, app.app_id, token)).status_code == 201
    assert_reason(await submit(client, app.app_id, token), TokenRejection.NONCE_USED)


# --- no-nonce mode -------------------------------------------------------------------------


async def test_jti_is_single_use_in_no_nonce_mode(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, require_nonce=False)
    other = await make_app(server.services, require_nonce=False)
    now = server.clock.now()
    assert (
        await submit(client, app.app_id, app.token(claims(None, now, jti="j1")))
    ).status_code == 201
    assert_reason(
        await submit(client, app.app_id, app.token(claims(None, now, jti="j1"))),
        TokenRejection.JTI_USED,
    )
    assert (
        await submit(client, app.app_id, app.token(claims(None, now, jti="j2")))
    ).status_code == 201
    # jti is per app.
    assert (
        await submit(client, other.app_id, other.token(claims(None, now, jti="j1")))
    ).status_code == 201


async def test_no_nonce_token_without_jti_is_replayable_within_max_age(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Documented (Kustomer-compatible) behaviour: without nonce or jti, a token is only
    bounded by its age. Backends that can should add a jti."""
    app = await make_app(server.services, require_nonce=False, max_token_age=120)
    now = server.clock.now()
    token = app.token(claims(None, now))
    assert (await submit(client, app.app_id, token)).status_code == 201
    assert (await submit(client, app.app_id, token)).status_code == 201
    server.clock.advance(121)
    assert_reason(await submit(client, app.app_id, token), TokenRejection.TOO_OLD)


async def test_no_nonce_app_still_accepts_nonce_tokens(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, require_nonce=False)
    session = await login(client, app, "alice", server.clock.now())
    assert session["user"]["user_id"] == "alice"


# --- users: email-only login, profile claims ----------------------------------------------


async def test_email_only_login_finds_the_existing_user(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    first = await login(client, app, "u-123", server.clock.now(), email="carol@example.com")
    assert first["user"]["email"] == "carol@example.com"
    nonce = await get_nonce(client, app.app_id)
    token = app.token({"email": "carol@example.com", "nce": nonce, "iat": int(server.clock.now())})
    response = await submit(client, app.app_id, token)
    assert response.status_code == 201, response.text
    assert response.json()["user"]["user_id"] == "u-123"


async def test_email_only_login_of_a_new_user_uses_the_email_as_id(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, require_nonce=False)
    now = int(server.clock.now())
    response = await submit(client, app.app_id, app.token({"email": "d@example.com", "iat": now}))
    assert response.status_code == 201
    assert response.json()["user"]["user_id"] == "d@example.com"
    again = await submit(
        client, app.app_id, app.token({"email": "d@example.com", "iat": now, "jti": "x"})
    )
    assert again.json()["user"]["user_id"] == "d@example.com"


async def test_profile_claims_create_and_update_the_user(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    first = await login(
        client,
        app,
        "alice",
        server.clock.now(),
        display_name="Alice",
        avatar_url="https://example.com/a.png",
        first_name="A",
    )
    assert first["user"]["display_name"] == "Alice"
    second = await login(
        client, app, "alice", server.clock.now(), display_name="Alice B", last_name="B"
    )
    user = second["user"]
    assert (user["display_name"], user["first_name"], user["last_name"]) == ("Alice B", "A", "B")
    assert user["avatar_url"] == "https://example.com/a.png"
    me = await client.get("/v1/me", headers=bearer(first["session_token"]))
    assert me.json()["user"]["display_name"] == "Alice B"


async def test_user_ids_are_per_app_and_byte_exact(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    nfc = await login(client, app, "\u00c5sa", server.clock.now(), display_name="nfc")
    nfd = await login(client, app, "A\u030asa", server.clock.now(), display_name="nfd")
    assert nfc["user"]["user_id"] != nfd["user"]["user_id"]
    assert nfc["user"]["display_name"] == "nfc"
    upper = await login(client, app, "ALICE", server.clock.now())
    lower = await login(client, app, "alice", server.clock.now())
    assert upper["user"]["user_id"] == "ALICE"
    assert lower["user"]["user_id"] == "alice"


# --- development keys and the sample provider ------------------------------------------


async def test_production_app_refuses_its_development_key(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)  # staging: has a development key
    async with server.services.db.read() as conn:
        dev = next(k for k in await app_store.list_keys(conn, app.app_id) if k.development)
    assert dev.private_key_pem
    nonce = await get_nonce(client, app.app_id)
    token = sign(
        claims(nonce, server.clock.now()),
        kid=dev.kid,
        alg=Alg(dev.alg),
        private_key_pem=dev.private_key_pem,
    )
    await app_handlers.update_app(server.services, app.app_id, environment="production")
    assert_reason(await submit(client, app.app_id, token), TokenRejection.SIGNATURE_INVALID)
    # Back on staging the very same token (same nonce, never consumed) is accepted.
    await app_handlers.update_app(server.services, app.app_id, environment="staging")
    assert (await submit(client, app.app_id, token)).status_code == 201


async def test_sample_provider_refused_once_the_app_is_production(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    await app_handlers.update_app(server.services, app.app_id, environment="production")
    refused = await client.post(
        "/v1/dev/identity_tokens", json={"app_id": app.app_id, "user_id": "x", "nonce": nonce}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "sample_provider_forbidden"


# --- request hygiene: body size, malformed bodies, rate limit ------------------------------


async def test_oversized_body_is_413(server: RunningServer, client: httpx.AsyncClient) -> None:
    app = await make_app(server.services)
    big = "x" * (server.settings.max_body_bytes + 1)
    for path in ("/v1/sessions", "/v1/nonces", "/v1/sessions/anonymous"):
        response = await client.post(path, json={"app_id": app.app_id, "identity_token": big})
        assert response.status_code == 413
        assert response.json()["error"]["id"] == "payload_too_large"


async def test_oversized_chunked_body_is_413(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 10_000

    response = await client.post(
        "/v1/sessions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{", 400),
        (b"not json", 400),
        (b"", 422),
        (b"[]", 422),
        (b"null", 422),
        (b'{"app_id": 1, "identity_token": "a.b.c"}', 422),
        (b'{"identity_token": "a.b.c"}', 422),
        (b'{"app_id": "x"}', 422),
        (b'{"app_id": "x", "identity_token": ""}', 422),
        (b'{"app_id": "x", "identity_token": ["a.b.c"]}', 422),
        (b'{"app_id": "' + b"x" * 65 + b'", "identity_token": "a.b.c"}', 422),
    ],
)
async def test_malformed_session_bodies_are_invalid_request(
    client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    response = await client.post(
        "/v1/sessions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["id"] == "invalid_request"


async def test_identity_token_over_the_field_limit_is_422(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    response = await submit(client, app.app_id, "a" * 65_537)
    assert response.status_code == 422


async def test_auth_rate_limit_is_429_with_retry_after(settings: Settings, tmp_path: Path) -> None:
    # 3 per 6 s (the burst, per the time 0.5/s takes to refill it), windows aligned to the
    # clock: a clock at a window's start waits the whole window.
    limited = settings.model_copy(update={"auth_rate_per_second": 0.5, "auth_rate_burst": 3})
    clock = ManualClock(start=1_800_000_000.0)
    async with (
        run_server(limited, clock) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        app = await make_app(server.services)
        for _ in range(3):
            assert (await client.post("/v1/nonces", json={"app_id": app.app_id})).status_code == 201
        for path, body in (
            ("/v1/nonces", {"app_id": app.app_id}),
            ("/v1/sessions", {"app_id": app.app_id, "identity_token": "a.b.c"}),
            ("/v1/sessions/anonymous", {"app_id": app.app_id}),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 429, response.text
            assert response.json()["error"]["id"] == "rate_limited"
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["data"]["retry_after"] == 6
        server.clock.advance(6)
        assert (await client.post("/v1/nonces", json={"app_id": app.app_id})).status_code == 201
        # Session use is not rate limited by the auth limiter.
        assert (await client.get("/v1/me")).status_code == 401
