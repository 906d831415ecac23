"""Every way a session ends, on one device against a real server (the multi-process versions
live in tests/e2e/): what the provider is asked, what happens to local data and the outbox."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chinwag.client import (
    STOP,
    AuthState,
    Client,
    MessageState,
    NotAuthenticated,
    SessionRevoked,
    Suspended,
)
from chinwag.server.handlers.sessions import revoke_user_sessions
from chinwag.server.handlers.suspension import set_user_suspended
from chinwag.server.settings import Settings
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in
from tests.support import RunningServer


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No clock-skew leeway, so a token's exp is exactly its session's end.
    return Settings(database_url=database_url, auth_rate_per_second=0, token_leeway_seconds=0)


def _files(store_dir: Path) -> list[Path]:
    return sorted(p for p in store_dir.rglob("*") if p.is_file())


async def _live_sessions(server: RunningServer, tokens: list[str]) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answers = [
            await http.get("/v1/me", headers={"Authorization": f"Bearer {t}"}) for t in tokens
        ]
    return sum(a.status_code == 200 for a in answers)


async def test_provider_stop_after_a_revocation_signs_out_completely(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    answers: list[object] = []

    async def provider(nonce: str, needs_refresh: bool) -> object:
        answer = STOP if answers else tokens.sign("al", nonce)
        answers.append(answer)
        return answer

    client = make_client("al-phone", identity_token_provider=provider)
    await client.connect()
    await client.authenticate()
    conv = await client.create_conversation(["al", "bo"])
    await client.send_message(conv.id, "before")
    await client.flush_outbox()
    reasons: list[str] = []
    client.on("deauthenticated", reasons.append)
    await revoke_user_sessions(server.services, tokens.app.app_id, "al")

    await eventually(lambda: _true(reasons == ["stopped"]))
    assert client.auth_state is AuthState.UNAUTHENTICATED
    assert not client.is_logged_in()
    with pytest.raises(NotAuthenticated):
        await client.send_message(conv.id, "after")
    with pytest.raises(NotAuthenticated):
        await client.conversations()
    assert client._tasks == []
    assert _files(tmp_path / "al-phone") == []  # the store and session.sqlite3 are gone
    await client.close()
    restarted = make_client("al-phone", identity_token_provider=provider)
    async with restarted:
        assert not restarted.is_logged_in()
        assert restarted.auth_state is AuthState.UNAUTHENTICATED


async def _true(value: bool) -> bool:
    return value


async def test_a_revocation_while_sending_renews_once_and_loses_nothing(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob")
    errors: list[BaseException] = []
    alice.on("error", errors.append)
    seen = [alice._auth.session.token] if alice._auth.session else []
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        for i in range(40):
            await alice.send_message(conv.id, f"m{i}")
            if i == 10:
                await revoke_user_sessions(server.services, tokens.app.app_id, "alice")
            await asyncio.sleep(0)
        await alice.flush_outbox()
        if alice._auth.session:
            seen.append(alice._auth.session.token)

        async def bob_has_all() -> bool:
            return len(await bob.messages(conv.id)) == 40

        await eventually(bob_has_all)
        texts = [m.text for m in await bob.messages(conv.id)]
        assert texts == [f"m{i}" for i in range(40)]  # in order, none twice
        alice_calls = tokens.calls[2:]  # after alice's and bob's sign-in
        assert [refresh for _, refresh in alice_calls] == [True]
        assert alice.is_authenticated
        assert errors == []
        assert await _live_sessions(server, seen) == 1  # no orphaned session
    finally:
        await alice.close()
        await bob.close()


async def test_a_session_is_refreshed_before_it_expires(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    states: list[AuthState] = []

    async def provider(nonce: str, needs_refresh: bool) -> str:
        tokens.calls.append((nonce, needs_refresh))
        return tokens.sign("al", nonce, exp=int(server.clock.now()) + 3)

    client = make_client("al-phone", identity_token_provider=provider)
    async with client:
        changed = asyncio.Event()
        client.on("authenticated", lambda user: changed.set())
        await client.authenticate()
        first = client._auth.session
        assert first is not None
        assert first.expires_at == pytest.approx(server.clock.now() + 3, abs=1)
        changed.clear()
        async with asyncio.timeout(10):
            await changed.wait()  # renewed at ~80 % of 3 s, with nobody asking
        states.append(client.auth_state)
        second = client._auth.session
        assert second is not None
        assert second.session_id != first.session_id
        assert [refresh for _, refresh in tokens.calls] == [False, True]
        # The old session is ended just after "authenticated" (``_end_quietly``): within
        # a bound, not necessarily before this test's first look (CI saw both live once).
        async with asyncio.timeout(5):
            while await _live_sessions(server, [first.token, second.token]) != 1:
                await asyncio.sleep(0.05)
        await client.me()  # the old socket's 4003 was ignored: still signed in
        assert client.is_authenticated
        assert len(tokens.calls) == 2


async def test_renewal_as_another_user_wipes_the_previous_users_data(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    who = ["al"]

    async def provider(nonce: str, needs_refresh: bool) -> str:
        return tokens.sign(who[0], nonce)

    async with make_client("shared-tablet", identity_token_provider=provider) as client:
        await client.authenticate()
        conv = await client.create_conversation(["al", "bo"])
        await client.send_message(conv.id, "al's secret")
        await client.flush_outbox()
        old_store = client._store.path if client._store else None
        assert old_store is not None
        who[0] = "cy"  # the app signed in someone else meanwhile
        await revoke_user_sessions(server.services, tokens.app.app_id, "al")
        me = await client.me()
        assert me.user_id == "cy"
        assert not old_store.exists()
        assert await client.conversations() == []


async def test_wait_until_synced_waits_for_the_servers_head_on_a_restart(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    alice = await signed_in(make_client, tokens, "alice")
    conv = await alice.create_conversation(["alice", "bob"])
    await bob.close()
    for i in range(30):
        await alice.send_message(conv.id, f"while away {i}")
    await alice.flush_outbox()
    await alice.close()
    again = make_client("bob-phone", identity_token_provider=tokens.provider("bob"))
    async with again:
        async with asyncio.timeout(10):
            await again.wait_until_synced()  # no sync_now(): the stream reached the head
        assert len(await again.messages(conv.id)) == 30


async def test_every_file_the_sdk_writes_is_owner_only(
    make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    client = await signed_in(make_client, tokens, "al")
    try:
        conv = await client.create_conversation(["al", "bo"])
        await client.send_message(conv.id, "hello")
        await client.flush_outbox()
        files = _files(tmp_path / "al-phone")
        assert any(f.name == "session.sqlite3" for f in files)
        assert any(f.name.endswith("-wal") for f in files)
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for folder in {f.parent for f in files}:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        await client.close()


@pytest.mark.parametrize("online", [True, False])
async def test_a_wiped_revocation_deletes_everything_without_asking(
    server: RunningServer,
    make_client: Callable[..., Client],
    tokens: Tokens,
    tmp_path: Path,
    online: bool,
) -> None:
    client = await signed_in(make_client, tokens, "al")
    conv = await client.create_conversation(["al", "bo"])
    await client.send_message(conv.id, "on the stolen phone")
    await client.flush_outbox()
    calls = len(tokens.calls)
    reasons: list[str] = []
    client.on("deauthenticated", reasons.append)
    if not online:  # the phone was off; it learns of the wipe from its next request's 401
        await client.close()
        client = make_client("al-phone", identity_token_provider=tokens.provider("al"))
        client.on("deauthenticated", reasons.append)
        await revoke_user_sessions(server.services, tokens.app.app_id, "al", wipe=True)
        await client.connect()
    else:
        await revoke_user_sessions(server.services, tokens.app.app_id, "al", wipe=True)
    try:
        await eventually(lambda: _true(reasons == ["wiped"]))
        assert len(tokens.calls) == calls  # the provider was not asked
        assert _files(tmp_path / "al-phone") == []
        assert not client.is_logged_in()
        with pytest.raises(NotAuthenticated):
            await client.send_message(conv.id, "after")
    finally:
        await client.close()


async def test_a_wipe_learned_by_an_outbox_send_signs_out_without_recursing(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    """The 401 saying wipe reaches a send first (no socket to hear the close): the task
    that learns it is one of the outbox's, which the wipe itself stops. It used to await
    its own cancellation: RecursionError in asyncio, and no ``deauthenticated``."""
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    client = await signed_in(make_client, tokens, "al", use_websocket=False, poll_interval=3600)
    conv = await client.create_conversation(["al", "bo"])
    reasons: list[str] = []
    client.on("deauthenticated", reasons.append)
    await revoke_user_sessions(server.services, tokens.app.app_id, "al", wipe=True)
    try:
        await client.send_message(conv.id, "from the stolen phone")
        await eventually(lambda: _true(reasons == ["wiped"]))
        assert loop_errors == []
        assert _files(tmp_path / "al-phone") == []
    finally:
        await client.close()


async def test_wait_until_synced_raises_when_a_wipe_arrives_after_authenticate(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    """docs/sdk.md's pattern: authenticate(), then wait_until_synced(). A device wiped while
    it was off resumes its saved session (authenticate() returns at once) and only then
    hears of the wipe; wait_until_synced() waited forever. It must raise, and a new
    sign-in must sync as before."""
    client = await signed_in(make_client, tokens, "al")
    await client.close()
    await revoke_user_sessions(server.services, tokens.app.app_id, "al", wipe=True)
    again = make_client("al-phone", identity_token_provider=tokens.provider("al"))
    reasons: list[str] = []
    again.on("deauthenticated", reasons.append)
    async with again:
        await again.authenticate()  # the saved session: no request made yet
        with pytest.raises(SessionRevoked):
            async with asyncio.timeout(10):
                await again.wait_until_synced()
        assert reasons == ["wiped"]
        await again.authenticate()
        async with asyncio.timeout(10):
            await again.wait_until_synced()
        assert again.is_authenticated


async def test_a_suspension_holds_the_queue_and_stops_signing_in_until_authenticate(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    """A suspended user is refused 403 user_suspended at sign-in and on writes. A trial's
    device asked its provider and signed in 28 times in 33 s, and 7 of its 111 queued
    messages failed for good over a suspension that was lifted. Nothing is a message's
    fault here: the queue waits, the SDK stops and says so, and resumes on authenticate()."""
    client = await signed_in(make_client, tokens, "al")
    app_id = tokens.app.app_id
    held = asyncio.Event()
    reasons: list[str] = []
    failed: list[str] = []
    client.on("deauthenticated", reasons.append)
    client.on("deauthenticated", lambda reason: held.set())
    client.on("message_failed", lambda mid, error: failed.append(mid))
    try:
        conv = await client.create_conversation(["al", "bo"])
        calls = len(tokens.calls)
        await set_user_suspended(server.services, app_id, "al", True)
        queued = [await client.send_message(conv.id, f"m{i}") for i in range(5)]
        async with asyncio.timeout(10):
            await held.wait()
        assert reasons == ["suspended"]
        assert client.auth_state is AuthState.SUSPENDED
        assert client._tasks == []  # nothing left to sign in or send
        with pytest.raises(Suspended) as refused:
            await client.sync_now()
        assert refused.value.error_id == "user_suspended"
        with pytest.raises(Suspended):
            async with asyncio.timeout(10):
                await client.wait_until_synced()
        queued.append(await client.send_message(conv.id, "while suspended"))
        assert len(tokens.calls) <= calls + 1  # at most the renewal the socket's close asked
        assert failed == []
        local = await client.messages(conv.id)  # the data stays
        assert [m.state for m in local] == [MessageState.PENDING] * 6
        assert not client.is_logged_in()

        await set_user_suspended(server.services, app_id, "al", False)
        await client.authenticate()
        await client.flush_outbox()
        assert [m.id for m in await client.messages(conv.id)] == [m.id for m in queued]
        assert {m.state for m in await client.messages(conv.id)} == {MessageState.SENT}
        assert failed == []
        assert client.is_authenticated
    finally:
        await client.close()
