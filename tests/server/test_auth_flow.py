"""The whole identity flow over a real loopback server, for every key type."""

from __future__ import annotations

import httpx
import jwt
import pytest

from chinwag.core.keys import Alg
from tests.support import RunningServer, get_nonce, login, make_app


@pytest.mark.parametrize("alg", list(Alg))
async def test_full_flow_for_every_key_type(
    server: RunningServer, client: httpx.AsyncClient, alg: Alg
) -> None:
    app = await make_app(server.services, alg=alg)
    now = server.clock.now()
    session = await login(client, app, "alice", now, display_name="Alice")
    assert session["user"]["user_id"] == "alice"
    assert session["user"]["display_name"] == "Alice"
    headers = {"Authorization": f"Bearer {session['session_token']}"}

    me = await client.get("/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["user"]["user_id"] == "alice"

    assert (await client.delete("/v1/sessions/current", headers=headers)).status_code == 204
    denied = await client.get("/v1/me", headers=headers)
    assert denied.status_code == 401
    error = denied.json()["error"]
    assert error["id"] == "authentication_required"
    fresh_nonce = error["data"]["nonce"]

    token = app.token({"sub": "alice", "nce": fresh_nonce, "iat": int(now)})
    again = await client.post("/v1/sessions", json={"app_id": app.app_id, "identity_token": token})
    assert again.status_code == 201
    assert again.json()["session_token"] != session["session_token"]


async def test_hs256_secret_works_exactly_as_printed(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """``jwt.encode(claims, SECRET, "HS256")`` with the printed text opens a session."""
    app = await make_app(server.services, alg=Alg.HS256)
    assert app.secret is not None
    nonce = await get_nonce(client, app.app_id)
    claims = {"sub": "alice", "nce": nonce, "iat": int(server.clock.now())}
    token = jwt.encode(claims, app.secret, algorithm="HS256", headers={"kid": app.kid})
    opened = await client.post("/v1/sessions", json={"app_id": app.app_id, "identity_token": token})
    assert opened.status_code == 201, opened.text


async def test_uploaded_public_key_works(server: RunningServer, client: httpx.AsyncClient) -> None:
    app = await make_app(server.services, alg=Alg.EDDSA, upload=True)
    session = await login(client, app, "bob", server.clock.now())
    assert session["user"]["user_id"] == "bob"


async def test_sample_provider_flow_on_staging(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    issued = await client.post(
        "/v1/dev/identity_tokens", json={"app_id": app.app_id, "user_id": "carol", "nonce": nonce}
    )
    assert issued.status_code == 201
    session = await client.post(
        "/v1/sessions",
        json={"app_id": app.app_id, "identity_token": issued.json()["identity_token"]},
    )
    assert session.status_code == 201


@pytest.mark.parametrize(
    ("field", "value"), [("user_id", "al\x00ice"), ("user_id", "al\nice"), ("display_name", "A\tB")]
)
async def test_sample_provider_refuses_what_a_session_would(
    server: RunningServer, client: httpx.AsyncClient, field: str, value: str
) -> None:
    """Not a 201 and a token that ``POST /v1/sessions`` then refuses as ``claim_invalid``."""
    app = await make_app(server.services)
    body = {"app_id": app.app_id, "user_id": "carol", "nonce": await get_nonce(client, app.app_id)}
    refused = await client.post("/v1/dev/identity_tokens", json={**body, field: value})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert (error["id"], error["data"]["property"]) == ("invalid_request", field)


async def test_sample_provider_refused_for_production(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services, production=True)
    nonce = await get_nonce(client, app.app_id)
    refused = await client.post(
        "/v1/dev/identity_tokens", json={"app_id": app.app_id, "user_id": "x", "nonce": nonce}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "sample_provider_forbidden"
