"""Signing in and out: Layer's challenge, ASAPP's token provider, sessions on the device."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chinwag.client import (
    STOP,
    AlreadyAuthenticated,
    AuthenticationStopped,
    AuthState,
    Client,
    ClientEvent,
    NotAuthenticated,
    StopAuthentication,
)
from tests.client.conftest import Tokens
from tests.support import RunningServer, make_app


async def test_challenge_callback_signs_in(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    seen: list[str] = []

    async def on_challenge(nonce: str) -> str:
        seen.append(nonce)
        return tokens.sign("alice", nonce)

    async with make_client(on_challenge=on_challenge) as client:
        events: list[object] = []
        client.on(ClientEvent.AUTHENTICATED, events.append)
        user = await client.authenticate()
        assert user.user_id == "alice"
        assert events == [user]
        assert len(seen) == 1
        assert (await client.me()).user_id == "alice"


async def test_challenge_answered_later(make_client: Callable[..., Client], tokens: Tokens) -> None:
    async with make_client() as client:
        nonces: asyncio.Queue[str] = asyncio.Queue()
        client.on("challenge", nonces.put_nowait)
        signing_in = asyncio.create_task(client.authenticate())
        nonce = await asyncio.wait_for(nonces.get(), 5)
        assert client.auth_state is AuthState.CHALLENGED
        answered = await client.answer_authentication_challenge(tokens.sign("bob", nonce))
        assert answered.user_id == "bob"
        assert (await signing_in).user_id == "bob"


async def test_one_user_per_client(make_client: Callable[..., Client], tokens: Tokens) -> None:
    async with make_client(identity_token_provider=tokens.provider("alice")) as client:
        await client.authenticate("alice")
        assert await client.request_nonce() is None
        assert (await client.authenticate("alice")).user_id == "alice"  # resumes
        assert len(tokens.calls) == 1
        with pytest.raises(AlreadyAuthenticated, match="deauthenticate"):
            await client.authenticate("mallory")
        with pytest.raises(AlreadyAuthenticated):
            await client.log_in(tokens.sign("mallory"))
        await client.deauthenticate()
        assert client.auth_state is AuthState.UNAUTHENTICATED
        nonce = await client.request_nonce()
        assert nonce is not None
        user = await client.answer_authentication_challenge(tokens.sign("mallory", nonce))
        assert user.user_id == "mallory"


async def test_challenge_mid_session_after_expiry_then_resume(
    server: RunningServer, make_client: Callable[..., Client], tmp_path: Path
) -> None:
    app = await make_app(server.services, session_lifetime=3600)
    tokens = Tokens(server, app)
    async with make_client(app_id=app.app_id, identity_token_provider=tokens.provider("al")) as c:
        challenges: list[str] = []
        c.on("challenge", challenges.append)
        await c.authenticate()
        first = c._auth.session
        server.clock.advance(3601)
        assert (await c.me()).user_id == "al"  # 401 → challenge → new session → retried
        assert [refresh for _, refresh in tokens.calls] == [False, True]
        assert len(challenges) == 2
        assert c._auth.session is not first
        assert c.is_authenticated


async def test_ten_concurrent_requests_make_one_provider_call(
    server: RunningServer, make_client: Callable[..., Client]
) -> None:
    app = await make_app(server.services, session_lifetime=3600)
    tokens = Tokens(server, app)
    async with make_client(app_id=app.app_id, identity_token_provider=tokens.provider("al")) as c:
        await c.authenticate()
        server.clock.advance(7200)
        users = await asyncio.gather(*(c.me() for _ in range(10)))
        assert {u.user_id for u in users} == {"al"}
        assert [refresh for _, refresh in tokens.calls] == [False, True]


async def test_session_survives_a_restart(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    async with make_client(identity_token_provider=tokens.provider("alice")) as first:
        await first.authenticate()
    restarted = make_client(identity_token_provider=tokens.provider("alice"))
    async with restarted:
        assert restarted.is_authenticated
        assert restarted.user is not None
        assert restarted.user.user_id == "alice"
        assert (await restarted.me()).user_id == "alice"
        assert len(tokens.calls) == 1  # no new identity token after the restart


async def test_provider_failures_back_off_then_succeed(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    calls = 0

    async def flaky(nonce: str, needs_refresh: bool) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("backend down")
        return tokens.sign("alice", nonce)

    async with make_client(identity_token_provider=flaky) as client:
        errors: list[BaseException] = []
        client.on("error", errors.append)
        assert (await client.authenticate()).user_id == "alice"
        assert calls == 3
        assert len(errors) == 2


@pytest.mark.parametrize("how", ["raise", "sentinel"])
async def test_provider_can_say_stop(make_client: Callable[..., Client], how: str) -> None:
    calls = 0

    def stop(nonce: str, needs_refresh: bool) -> object:
        nonlocal calls
        calls += 1
        if how == "raise":
            raise StopAuthentication
        return STOP

    async with make_client(identity_token_provider=stop) as client:
        reasons: list[str] = []
        client.on(ClientEvent.DEAUTHENTICATED, reasons.append)
        with pytest.raises(AuthenticationStopped):
            await client.authenticate()
        assert reasons == ["stopped"]
        assert calls == 1
        assert client.auth_state is AuthState.UNAUTHENTICATED
        with pytest.raises(NotAuthenticated):
            await client.me()
        assert calls == 1  # it stopped asking


async def test_stop_mid_session_reports_deauthenticated(
    server: RunningServer, make_client: Callable[..., Client]
) -> None:
    app = await make_app(server.services, session_lifetime=3600)
    tokens = Tokens(server, app)
    answers = iter(["token", "stop"])

    async def provider(nonce: str, needs_refresh: bool) -> object:
        return tokens.sign("al", nonce) if next(answers) == "token" else STOP

    async with make_client(app_id=app.app_id, identity_token_provider=provider) as client:
        reasons: list[str] = []
        client.on("deauthenticated", reasons.append)
        await client.authenticate()
        server.clock.advance(3601)
        with pytest.raises(AuthenticationStopped):
            await client.me()
        assert reasons == ["stopped"]


async def test_stop_at_a_proactive_refresh_ends_the_still_live_session_on_the_server(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    """Signed out while the session still worked: it must not stay live on the server,
    held by nobody, until it expires (30 days by default)."""
    answers = iter(["token", "stop"])

    async def provider(nonce: str, needs_refresh: bool) -> object:
        return tokens.sign("al", nonce) if next(answers) == "token" else STOP

    async with make_client(identity_token_provider=provider) as client:
        await client.authenticate()
        assert client._auth.session is not None
        token = client._auth.session.token
        with pytest.raises(AuthenticationStopped):
            await client._auth.refresh()  # what refresh_forever does at ~80 % of the life
        assert client.auth_state is AuthState.UNAUTHENTICATED
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


async def test_device_label_reaches_the_apps_session_list(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer
) -> None:
    from chinwag.server.handlers.sessions import list_user_sessions

    provider = tokens.provider("alice")
    async with make_client(identity_token_provider=provider, device_label="Alice's phone") as c:
        await c.authenticate()
        [session] = await list_user_sessions(server.services, tokens.app.app_id, "alice")
    assert session.device_label == "Alice's phone"
    assert session.address == "127.0.0.1"
