"""Local store and sync over a real server: first sync, live updates, several devices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from chinwag.client import (
    Client,
    ClientEvent,
    Conversation,
    SyncPolicy,
    SyncProgress,
    Typing,
    TypingState,
)
from chinwag.core.protocol import ServerFrame, event_frame, parse_server_frame, typing_frame
from tests.client.conftest import Tokens
from tests.support import RunningServer


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def signed_in(
    make_client: Callable[..., Client], tokens: Tokens, user: str, **kw: Any
) -> Client:
    client = make_client(
        f"{user}-{kw.pop('device', 'phone')}", identity_token_provider=tokens.provider(user), **kw
    )
    await client.connect()
    await client.authenticate(user)
    await client.wait_until_synced()
    return client


def view(conversations: list[Conversation]) -> list[tuple[str, tuple[str, ...], int]]:
    return [(c.id, tuple(sorted(c.participants)), c.last_position) for c in conversations]


async def test_two_devices_and_a_third_user_converge(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    phone = await signed_in(make_client, tokens, "alice", device="phone")
    laptop = await signed_in(make_client, tokens, "alice", device="laptop")
    bob = await signed_in(make_client, tokens, "bob")
    try:
        conv = await phone.create_conversation(["alice", "bob"], metadata={"title": "hi"})
        for i in range(5):
            await phone.send_message(conv.id, f"alice {i}")
        await phone.flush_outbox()

        async def bob_has_them() -> bool:
            return len(await bob.messages(conv.id)) == 5

        await eventually(bob_has_them)
        for i in range(3):
            await bob.send_message(conv.id, f"bob {i}")
        await bob.flush_outbox()
        for client in (phone, laptop, bob):

            async def done(c: Client = client) -> bool:
                return len(await c.messages(conv.id)) == 8

            await eventually(done)
        texts = [[m.text for m in await c.messages(conv.id)] for c in (phone, laptop, bob)]
        assert texts[0] == texts[1] == texts[2]
        assert texts[0] == [f"alice {i}" for i in range(5)] + [f"bob {i}" for i in range(3)]
        positions = [m.position for m in await laptop.messages(conv.id)]
        assert positions == list(range(1, 9))
        views = [view(await c.conversations()) for c in (phone, laptop, bob)]
        assert views[0] == views[1] == views[2]
        laptop_conv = await laptop.conversation(conv.id)
        bob_conv = await bob.conversation(conv.id)
        assert laptop_conv is not None
        assert bob_conv is not None
        assert laptop_conv.unread_count == 3
        # Sending marks read up to the sent message, on the server and on every device of the
        # sender: bob answered after alice's five, so bob has nothing unread.
        assert (bob_conv.read_position, bob_conv.unread_count) == (8, 0)
        server_view = await bob._request("GET", f"/v1/conversations/{conv.id}")
        assert (server_view["read_position"], server_view["unread_count"]) == (8, 0)
        assert laptop_conv.metadata == {"title": "hi"}
        await laptop.mark_read(conv.id, 8)

        async def read_everywhere() -> bool:
            found = await phone.conversation(conv.id)
            return found is not None and found.unread_count == 0

        await eventually(read_everywhere)
    finally:
        for client in (phone, laptop, bob):
            await client.close()


async def test_fresh_device_downloads_history_with_progress(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    try:
        convs = [await alice.create_conversation(["alice", f"u{i}"]) for i in range(3)]
        for conv in convs:
            for j in range(30):
                await alice.send_message(conv.id, f"{j}")
        await alice.flush_outbox()
    finally:
        await alice.close()
    progress: list[SyncProgress] = []
    fresh = make_client("alice-new", identity_token_provider=tokens.provider("alice"))
    fresh.on(ClientEvent.SYNC_PROGRESS, progress.append)
    async with fresh:
        await fresh.authenticate()
        await fresh.wait_until_synced()
        assert progress[-1].messages == progress[-1].messages_total == 90
        assert progress[-1].fraction == 1.0
        for conv in convs:
            assert [m.text for m in await fresh.messages(conv.id)] == [str(j) for j in range(30)]
    last_few = make_client(
        "alice-small",
        identity_token_provider=tokens.provider("alice"),
        sync_policy=SyncPolicy.last(4),
    )
    async with last_few:
        await last_few.authenticate()
        await last_few.wait_until_synced()
        for conv in convs:
            assert [m.position for m in await last_few.messages(conv.id)] == [27, 28, 29, 30]


async def test_live_events_arrive_over_the_websocket(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob")
    try:
        changes: list[list[dict[str, Any]]] = []
        bob.on("changes", changes.append)
        conv = await alice.create_conversation(["alice", "bob"])
        await alice.send_message(conv.id, "over the socket")

        async def arrived() -> bool:
            return [m.text for m in await bob.messages(conv.id)] == ["over the socket"]

        await eventually(arrived)  # no sync_now(): only the socket can have brought it
        assert any(e["type"] == "message.created" for batch in changes for e in batch)
        assert bob.connection_state.value == "connected"
    finally:
        await alice.close()
        await bob.close()


async def test_websocket_unavailable_falls_back_to_polling(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob", use_websocket=False, poll_interval=0.05)
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        await alice.send_message(conv.id, "polled")

        async def arrived() -> bool:
            return len(await bob.messages(conv.id)) == 1

        await eventually(arrived)
    finally:
        await alice.close()
        await bob.close()


async def test_cursor_persists_across_restarts(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    alice = await signed_in(make_client, tokens, "alice")
    conv = await alice.create_conversation(["alice", "bob"])
    await alice.send_message(conv.id, "one")
    await alice.flush_outbox()

    async def has(n: int) -> bool:
        return len(await bob.messages(conv.id)) == n

    await eventually(lambda: has(1))
    await bob.close()
    await alice.send_message(conv.id, "two while bob was away")
    await alice.flush_outbox()
    await alice.close()
    again = make_client("bob-phone", identity_token_provider=tokens.provider("bob"))
    async with again:
        await again.wait_until_synced()  # already synced: no history download
        await again.sync_now()
        assert [m.text for m in await again.messages(conv.id)] == ["one", "two while bob was away"]
        assert len(tokens.calls) == 2  # bob and alice signed in once each; no re-auth


async def test_revoked_session_asks_the_provider_and_keeps_the_data(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        await alice.send_message(conv.id, "still here")
        await alice.flush_outbox()
        store = alice._store
        assert store is not None
        reasons: list[str] = []
        alice.on("deauthenticated", reasons.append)
        session = alice._auth.session
        assert session is not None
        async with httpx.AsyncClient(base_url=server.url) as http:  # ended behind its back
            ended = await http.delete(
                "/v1/sessions/current", headers={"Authorization": f"Bearer {session.token}"}
            )
            assert ended.status_code == 204

        async def renewed() -> bool:
            now = alice._auth.session
            renewed = now is not None and now.session_id != session.session_id
            return renewed and alice.is_authenticated

        await eventually(renewed)
        assert tokens.calls[-1][1] is True  # asked with needs_refresh
        assert reasons == []
        assert store.path.exists()
        assert [m.text for m in await alice.messages(conv.id)] == ["still here"]
    finally:
        await alice.close()


async def test_a_socket_refused_by_a_full_node_is_retried_not_traded_for_polling(
    server: RunningServer,
    make_client: Callable[..., Client],
    tokens: Tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node at its connection cap answers the upgrade 503 with Retry-After. The device
    must come back on a socket once there is room: typing travels only on one, so a device
    that fell back to polling for good would stop seeing it without a word."""
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob")
    bob_saw: list[Typing] = []
    bob.on(ClientEvent.TYPING, bob_saw.append)
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        assert server.uvicorn is not None
        config = server.uvicorn.config
        room = config.limit_concurrency
        config.limit_concurrency = 1  # every connection from now on is over the cap
        caplog.set_level(logging.WARNING, logger="chinwag.client")
        server.services.hub.close_all()  # 1001: both devices reconnect, and are refused

        async def refused() -> bool:
            return caplog.text.count("WebSocket refused (503)") >= 2

        await eventually(refused)
        config.limit_concurrency = room

        async def both_on_sockets() -> bool:
            return server.services.hub.connection_count() == 2

        await eventually(both_on_sockets)

        async def alice_types() -> bool:
            # The hub counts a socket before the SDK has it in hand (a moment later): until
            # then set_typing sends nothing and says so.
            return await alice.set_typing(conv.id, TypingState.STARTED)

        await eventually(alice_types)

        async def bob_sees_it() -> bool:
            return Typing(conv.id, "alice", TypingState.STARTED) in bob_saw

        await eventually(bob_sees_it)
    finally:
        await alice.close()
        await bob.close()


async def test_a_typing_signal_among_a_burst_of_events_reaches_the_app(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    """Event frames waiting together are stored in one transaction. A typing signal that
    arrived between them was taken off the queue with the burst and dropped: under load,
    the other user's typing never showed. Fed here as frames the server sent, in order."""
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob", use_websocket=False, poll_interval=3600)
    bob_saw: list[Typing] = []
    bob.on(ClientEvent.TYPING, bob_saw.append)
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        for text in ("one", "two"):
            await alice.send_message(conv.id, text)
        await alice.flush_outbox()
        live = bob._live
        assert live is not None
        page = await live.request("GET", "/v1/events", params={"after": await live.store.cursor()})
        frames = [
            parse_server_frame(event_frame(e["cursor"], orjson.dumps(e["event"])))
            for e in page["events"]
        ]
        assert len(frames) >= 3  # the conversation, then the two messages
        typing = parse_server_frame(typing_frame(conv.id, "alice", TypingState.STARTED))
        queue: asyncio.Queue[ServerFrame | None] = asyncio.Queue()
        for frame in (frames[0], typing, *frames[1:], None):
            queue.put_nowait(frame)
        await live._consume(queue, await bob._auth.current())
        assert bob_saw == [Typing(conv.id, "alice", TypingState.STARTED)]
        assert [m.text for m in await bob.messages(conv.id)] == ["one", "two"]
    finally:
        await alice.close()
        await bob.close()
