"""Positions heard from other nodes are hints: one store read each, never waited for."""

from __future__ import annotations

import asyncio
from typing import Any

from chinwag.server.connection import Connection
from chinwag.server.storage.events import StoredEvent, StoredPage


class Store:
    """A user's stream as ``read_page`` sees it; ``gate`` holds the next read open after
    it has read (as a statement sees what was committed when it began)."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.reads = 0
        self.merges: list[bool] = []
        self.gate: asyncio.Event | None = None

    async def read_page(self, after: int, limit: int, merge: bool) -> StoredPage:
        self.reads += 1
        self.merges.append(merge)
        found = [e for e in self.events if e.pos > after]
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return StoredPage(found[:limit], complete=len(found) <= limit)

    def append(self) -> None:
        pos = len(self.events) + 1
        self.events.append(StoredEvent(pos=pos, event_json=b'{"n":%d}' % pos))


def connection(store: Store, sent: list[Any]) -> Connection:
    async def send(message: Any) -> None:
        sent.append(message)

    return Connection(
        app_id="app", user_pk=1, session_id="s", expires_at=float("inf"), cursor=0,
        queue_size=100, queue_bytes=1 << 20, read_page=store.read_page, send=send,
    )  # fmt: skip


async def settle(store: Store, reads: int) -> None:
    async with asyncio.timeout(5):
        while store.reads < reads:
            await asyncio.sleep(0.001)
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_false_position_costs_one_read_and_delivers_nothing() -> None:
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    conn.hint(10**9)
    await settle(store, 1)
    await asyncio.sleep(0.2)  # a connection waiting for the position would read again
    assert (store.reads, sent, conn.cursor) == (1, [], 0)
    conn.hint(0)  # not past the cursor: no read at all
    await asyncio.sleep(0.05)
    assert store.reads == 1


async def test_a_hint_during_a_read_reads_once_more_and_delivers_the_event() -> None:
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    gate = store.gate = asyncio.Event()
    conn.hint(1)
    await settle(store, 1)  # the first read is under way, before the event commits
    store.append()
    conn.hint(1)
    gate.set()
    await settle(store, 2)  # the held read, and the re-read that finds it (and all)
    await asyncio.sleep(0.1)
    assert (store.reads, conn.cursor) == (2, 1)
    assert [m["text"] for m in sent] == ['{"type":"event","cursor":1,"event":{"n":1}}']


async def test_a_new_event_heard_from_another_node_costs_one_read() -> None:
    """A whole page shows the stream is current: no second read to find it empty."""
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    store.append()
    conn.hint(1)
    await settle(store, 1)
    await asyncio.sleep(0.2)
    assert (store.reads, conn.cursor) == (1, 1)


async def test_a_page_cut_short_is_read_on() -> None:
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    conn._page_size = 2
    for _ in range(5):
        store.append()
    conn.hint(5)
    await settle(store, 3)
    await asyncio.sleep(0.1)
    assert (store.reads, conn.cursor) == (3, 5)


async def test_a_hint_for_what_the_running_read_delivers_costs_no_second_read() -> None:
    """Two messages heard of while the first one's read is under way: that read finds
    both, and the second hint names nothing past the cursor."""
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    gate = store.gate = asyncio.Event()
    store.append()
    store.append()
    conn.hint(1)
    await settle(store, 1)
    conn.hint(2)
    gate.set()
    await asyncio.sleep(0.2)
    assert (store.reads, conn.cursor) == (1, 2)


async def test_only_a_replay_and_a_resync_merge_what_is_pending() -> None:
    """A hint's events are in the store already; what a replay or a resync must find may
    still be pending in a big conversation."""
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    conn.start_replay()
    await settle(store, 1)
    store.append()
    conn.hint(1)
    await settle(store, 2)
    conn.resync()
    await settle(store, 3)
    assert store.merges == [True, False, True]


async def test_a_resync_during_a_read_reads_once_more_and_merges() -> None:
    store, sent = Store(), list[Any]()
    conn = connection(store, sent)
    gate = store.gate = asyncio.Event()
    conn.hint(1)
    await settle(store, 1)
    conn.resync()
    gate.set()
    await settle(store, 2)
    await asyncio.sleep(0.1)
    assert store.merges == [False, True]
