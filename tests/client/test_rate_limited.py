"""A rate-limited outbox waits as long as the server asked, and then delivers everything."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from chinwag.client import Client
from chinwag.client.errors import ServerError
from chinwag.client.store import Store
from chinwag.server.settings import Settings
from tests.client.conftest import Tokens
from tests.client.test_sync import signed_in
from tests.support import RunningServer, eventually


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, limit_messages_per_session="2/second")


def test_retry_after_is_read_from_the_error_data() -> None:
    assert ServerError(429, "rate_limited", "", {"retry_after": 0.7}).retry_after == 0.7
    assert ServerError(503, "unavailable", "", {}).retry_after is None
    assert ServerError(429, "rate_limited", "", {"retry_after": "soon"}).retry_after is None
    assert ServerError(429, "rate_limited", "", {"retry_after": True}).retry_after is None


async def _third_refused(store: Store) -> None:
    """Until the third of three queued messages was refused once (2/second)."""

    async def refused() -> bool:
        entries = await store.outbox()
        return len(entries) == 1 and entries[0].attempts >= 1

    await eventually(refused, timeout=10)


async def _three_queued(server: RunningServer, alice: Client) -> tuple[str, Store]:
    """Three messages queued at the start of a second: the refusal's retry_after is then a
    whole 1.0 s, longer than the windows in which the tests look."""
    conv = await alice.create_conversation(["alice", "bob"])
    server.clock.set(math.ceil(server.clock.now()))
    for i in range(3):
        await alice.send_message(conv.id, f"m{i}")
    store = alice._store
    assert store is not None
    return conv.id, store


async def test_outbox_waits_for_retry_after_instead_of_hammering(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    # rand() == 0 makes the client's own back-off zero: without reading retry_after the
    # outbox would resend the refused message as fast as the loop turns.
    alice = await signed_in(make_client, tokens, "alice", rand=lambda: 0.0)
    try:
        conv_id, store = await _three_queued(server, alice)
        await _third_refused(store)
        outbox = alice._outbox
        assert outbox is not None
        outbox.wake()  # what a reconnect or a send does: it must not cut the server's wait
        await asyncio.sleep(0.3)  # a window in which a hammering outbox would try again
        (entry,) = await store.outbox()
        assert entry.attempts == 1

        server.clock.advance(1.0)  # the server's window ends; the wait it asked for ends too

        async def all_sent() -> bool:
            return await alice.pending_count() == 0

        await eventually(all_sent, timeout=10)
        assert [m.text for m in await alice.messages(conv_id)] == ["m0", "m1", "m2"]
    finally:
        await alice.close()


async def test_flush_outbox_waits_through_a_rate_limit_instead_of_raising(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    alice = await signed_in(make_client, tokens, "alice", rand=lambda: 0.0)
    try:
        conv_id, store = await _three_queued(server, alice)
        flushing = asyncio.create_task(alice.flush_outbox())
        await _third_refused(store)
        assert not flushing.done()  # it waits the retry_after out; it did not raise
        server.clock.advance(1.0)
        await asyncio.wait_for(flushing, timeout=10)
        assert await alice.pending_count() == 0
        assert [m.text for m in await alice.messages(conv_id)] == ["m0", "m1", "m2"]
    finally:
        await alice.close()
