"""examples/identity_backend.py against a real chinwag server, for every key type."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from chinwag.core.keys import Alg
from tests.support import RunningServer, get_nonce, make_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "identity_backend.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("identity_backend_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


async def backend_for(
    server: RunningServer, alg: Alg, **app_options: object
) -> tuple[str, httpx.AsyncClient]:
    app = await make_app(server.services, alg=alg, **app_options)  # type: ignore[arg-type]
    key = example.SigningKey(
        kid=app.kid, alg=alg.value, private_key_pem=app.private_key_pem, secret=app.secret
    )
    users = [
        example.User.with_password(
            "alice", "wonderland", display_name="Alice", email="alice@example.com"
        )
    ]
    backend = example.create_backend(key, app.app_id, users)
    transport = httpx.ASGITransport(app=backend)
    return app.app_id, httpx.AsyncClient(transport=transport, base_url="http://backend")


@pytest.mark.parametrize("alg", list(Alg))
async def test_log_in_through_the_example_backend(
    server: RunningServer, client: httpx.AsyncClient, alg: Alg
) -> None:
    app_id, backend = await backend_for(server, alg)
    async with backend:
        nonce = await get_nonce(client, app_id)
        issued = await backend.post(
            "/identity_token", json={"username": "alice", "password": "wonderland", "nonce": nonce}
        )
        assert issued.status_code == 200, issued.text
        session = await client.post(
            "/v1/sessions",
            json={"app_id": app_id, "identity_token": issued.json()["identity_token"]},
        )
    assert session.status_code == 201, session.text
    user = session.json()["user"]
    assert (user["user_id"], user["display_name"], user["email"]) == (
        "alice",
        "Alice",
        "alice@example.com",
    )


async def test_wrong_password_gets_no_token(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app_id, backend = await backend_for(server, Alg.ES256)
    async with backend:
        nonce = await get_nonce(client, app_id)
        for body in (
            {"username": "alice", "password": "guess", "nonce": nonce},
            {"username": "mallory", "password": "wonderland", "nonce": nonce},
            {"username": "alice", "password": ["wonderland"], "nonce": nonce},
            {"username": "alice", "password": "wonderland"},
        ):
            response = await backend.post("/identity_token", json=body)
            assert response.status_code in (400, 401)
            assert "identity_token" not in response.json()


async def test_example_token_is_bound_to_its_nonce_and_app(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app_id, backend = await backend_for(server, Alg.EDDSA)
    async with backend:
        nonce = await get_nonce(client, app_id)
        token = (
            await backend.post(
                "/identity_token",
                json={"username": "alice", "password": "wonderland", "nonce": nonce},
            )
        ).json()["identity_token"]
    first = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    assert first.status_code == 201
    replay = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    assert replay.json()["error"]["data"]["reason"] == "nonce_used"


def test_signing_key_checks_its_configuration() -> None:
    with pytest.raises(ValueError, match="alg"):
        example.SigningKey(kid="k", alg="none", private_key_pem="x")
    with pytest.raises(ValueError, match="secret"):
        example.SigningKey(kid="k", alg="HS256", private_key_pem="x")
    with pytest.raises(ValueError, match="private"):
        example.SigningKey(kid="k", alg="ES256")


async def test_the_example_s_sessions_last_its_token_lifetime_not_minutes(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The session ends at the token's exp, so the example's exp is the session's life."""
    app_id, backend = await backend_for(server, Alg.ES256)
    async with backend:
        nonce = await get_nonce(client, app_id)
        token = (
            await backend.post(
                "/identity_token",
                json={"username": "alice", "password": "wonderland", "nonce": nonce},
            )
        ).json()["identity_token"]
    session = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    lasts = session.json()["expires_at"] - server.clock.now()
    assert example.TOKEN_LIFETIME >= 3600
    assert lasts == pytest.approx(example.TOKEN_LIFETIME, abs=120)
