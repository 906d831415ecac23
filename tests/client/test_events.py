"""The SDK's typed events over a real server: ``message`` once per new message,
``receipt`` for anyone's read marks, ``typing`` both ways over the socket."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable

import pytest

from chinwag.client import Client, ClientEvent, Message, Receipt, Typing, TypingState
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in


def collect(client: Client, event: ClientEvent) -> list[object]:
    seen: list[object] = []
    client.on(event, seen.append)
    return seen


async def test_message_event_fires_once_per_new_message_even_across_replays(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    phone = await signed_in(make_client, tokens, "alice", device="phone")
    laptop = await signed_in(make_client, tokens, "alice", device="laptop")
    bob = await signed_in(make_client, tokens, "bob")
    on_phone, on_laptop, on_bob = (collect(c, ClientEvent.MESSAGE) for c in (phone, laptop, bob))
    try:
        conv = await phone.create_conversation(["alice", "bob"])
        for i in range(3):
            await phone.send_message(conv.id, f"hello {i}")
        await phone.flush_outbox()

        async def delivered() -> bool:
            return len(on_bob) == 3 and len(on_laptop) == 3

        await eventually(delivered)
        assert all(isinstance(m, Message) for m in on_bob)
        assert [m.text for m in on_bob] == ["hello 0", "hello 1", "hello 2"]  # type: ignore[attr-defined]
        assert [m.position for m in on_laptop] == [1, 2, 3]  # type: ignore[attr-defined]
        # Replay the whole stream on bob's device: the events apply again, no message repeats.
        assert bob._store is not None
        await bob._store.set_meta("cursor", "0")
        await bob.sync_now()
        await phone.sync_now()
        assert len(on_bob) == 3
        assert on_phone == []  # this device's own messages come back as message_sent
        # A new device downloads history: that is not news either.
        tablet = make_client("bob-tablet", identity_token_provider=tokens.provider("bob"))
        on_tablet = collect(tablet, ClientEvent.MESSAGE)
        await tablet.connect()
        await tablet.authenticate("bob")
        await tablet.wait_until_synced()
        assert len(await tablet.messages(conv.id)) == 3
        assert on_tablet == []
        await tablet.close()
    finally:
        for client in (phone, laptop, bob):
            await client.close()


async def test_receipt_event_reports_the_other_participants_read_mark(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob")
    receipts = collect(alice, ClientEvent.RECEIPT)
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        await alice.send_message(conv.id, "read me")
        await alice.flush_outbox()
        await eventually(lambda: _has_messages(bob, conv.id, 1))
        await bob.mark_read(conv.id, 1)

        async def seen() -> bool:
            return any(getattr(r, "user_id", None) == "bob" for r in receipts)

        await eventually(seen)
        assert Receipt(conv.id, "bob", 1, 1) in receipts
    finally:
        await alice.close()
        await bob.close()


async def test_typing_goes_from_one_users_socket_to_the_others(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob")
    typing = collect(alice, ClientEvent.TYPING)
    arrived = asyncio.Event()
    alice.on(ClientEvent.TYPING, lambda _: arrived.set())
    try:
        conv = await bob.create_conversation(["alice", "bob"])
        await eventually(lambda: _knows(alice, conv.id))
        await eventually(lambda: bob.set_typing(conv.id, "started"))
        async with asyncio.timeout(10):
            await arrived.wait()
        assert typing == [Typing(conv.id, "bob", TypingState.STARTED)]
        arrived.clear()
        assert await bob.set_typing(conv.id, TypingState.FINISHED)
        async with asyncio.timeout(10):
            await arrived.wait()
        assert typing[-1] == Typing(conv.id, "bob", TypingState.FINISHED)
    finally:
        await alice.close()
        await bob.close()


async def test_typing_is_not_sent_without_a_session(
    make_client: Callable[..., Client],
) -> None:
    client = make_client("nobody")
    await client.connect()
    try:
        assert await client.set_typing("00000000-0000-0000-0000-000000000000") is False
    finally:
        await client.close()


async def _has_messages(client: Client, cid: str, count: int) -> bool:
    return len(await client.messages(cid)) == count


async def _knows(client: Client, cid: str) -> bool:
    return await client.conversation(cid) is not None


async def test_a_message_committed_as_its_sync_is_cancelled_is_still_announced_once(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    """close() mid-burst cancels the task applying a batch. The commit runs on in the
    store's thread, but the ``message`` event after it was never raised, and not on the
    next run either (the message was no longer new): an operator trial lost one of 200 in
    2 of 5 runs. Here the cancellation lands inside the commit, on purpose."""
    alice = await signed_in(make_client, tokens, "alice")
    bob = await signed_in(make_client, tokens, "bob", use_websocket=False, poll_interval=3600)
    announced = collect(bob, ClientEvent.MESSAGE)
    conv = await alice.create_conversation(["alice", "bob"])
    await alice.send_message(conv.id, "mid-commit")
    await alice.flush_outbox()
    await alice.close()
    inside, release = threading.Event(), threading.Event()

    def pause() -> int:  # runs in the store's thread, inside the batch's transaction
        inside.set()
        release.wait(10)
        return 0

    def install(conn: sqlite3.Connection) -> None:
        conn.create_function("pause_commit", 0, pause)
        conn.execute(
            "CREATE TEMP TRIGGER pause AFTER INSERT ON messages BEGIN SELECT pause_commit(); END"
        )

    assert bob._store is not None
    await bob._store._run(install)
    syncing = asyncio.create_task(bob.sync_now())
    assert await asyncio.to_thread(inside.wait, 10)
    syncing.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await syncing
    await bob.close()
    again = make_client("bob-phone", identity_token_provider=tokens.provider("bob"))
    announced += collect(again, ClientEvent.MESSAGE)
    async with again:
        await again.wait_until_synced()
        await again.sync_now()
        assert [m.text for m in await again.messages(conv.id)] == ["mid-commit"]
    assert [m.text for m in announced] == ["mid-commit"]  # type: ignore[attr-defined]
