"""Sockets' reads after a doorbell go together (``storage/read_batching.py``): many pages
in one statement read exactly what each would read alone, the reads asked for while one
is out go together, and a batch's pages share its byte bound."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from chinwag.server.storage import events as event_store
from chinwag.server.storage import read_batching
from chinwag.server.storage import users as user_store
from chinwag.server.storage.events import PageRequest, StoredPage
from chinwag.server.storage.member_fanout import EAGER_MEMBERS
from tests.support import (
    POSTGRES_ONLY,
    AppFixture,
    RunningServer,
    bearer,
    read_whole_stream,
    send,
    start,
)

Headers = dict[str, str]


async def _streams(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> dict[str, int]:
    """Streams with both kinds of entry: single events (1:1 conversations) and spans of a
    big conversation's log (merged by reading), extended and interleaved. Each user's pk."""
    now = server.clock.now()
    heads = {name: await bearer(client, app, name, now) for name in ("alice", "bob", "carol")}
    extras = [f"extra{i}" for i in range(EAGER_MEMBERS + 2)]
    room = await start(client, heads["alice"], "bob", "carol", *extras)
    pair = await start(client, heads["alice"], "bob")
    for round_ in range(3):
        for i in range(4):
            await send(client, heads["alice"], room, f"room {round_}.{i}")
        await send(client, heads["carol"], room, f"carol {round_}")
        await send(client, heads["bob"], pair, f"pair {round_}")
        for name in ("bob", "carol"):
            await read_whole_stream(client, heads[name])  # merges: spans, extended
    pks = {}
    async with server.services.db.read() as conn:
        for name in ("alice", "bob", "carol", "nobody"):
            user = await user_store.get_user(conn, app.app_id, name)
            pks[name] = user.pk if user is not None else 10**9
    return pks


def _positions(page: StoredPage) -> list[int]:
    return [event.pos for event in page.events]


@pytest.mark.parametrize("max_bytes", [event_store.MAX_PAGE_BYTES, 900])
async def test_many_pages_in_one_read_are_each_what_it_would_read_alone(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, max_bytes: int
) -> None:
    """Every user, every cursor (inside spans, at their ends, past the head), several
    limits, a stream that does not exist; with a byte bound that cuts pages too."""
    pks = await _streams(server, client, app)
    requests = [
        PageRequest(pk, after, limit)
        for pk in pks.values()
        for after in range(0, 30)
        for limit in (1, 3, 500)
    ]
    async with server.services.db.read() as conn:
        together = await event_store.read_stream_pages(conn, requests, max_bytes=max_bytes)
        alone = [
            await event_store.read_stream_page(
                conn, r.user_pk, after=r.after, limit=r.limit, max_bytes=max_bytes
            )
            for r in requests
        ]
    assert together == alone
    assert sum(len(page.events) for page in together) > 150  # the streams were not empty
    if max_bytes < event_store.MAX_PAGE_BYTES:
        assert any(not p.complete and len(p.events) < 3 for p in together)  # some cut by bytes


def _batches() -> tuple[float, float]:
    """Batches read so far in this process, and pages read in them."""
    count = REGISTRY.get_sample_value("chinwag_catch_up_batch_size_count") or 0.0
    total = REGISTRY.get_sample_value("chinwag_catch_up_batch_size_sum") or 0.0
    return count, total


async def test_reads_asked_while_one_is_out_go_as_one(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    pks = await _streams(server, client, app)
    reads = server.services.page_reads
    asks = [(pk, after) for pk in pks.values() for after in range(0, 25)]
    before = _batches()
    pages = await asyncio.gather(*(reads.page(pk, after=a, limit=500) for pk, a in asks))
    count, total = _batches()
    # The first goes at once, alone; the rest, asked while it was out, together.
    # SQLite answers without giving the loop a turn: nothing is ever out, each goes alone.
    batches = 2 if server.services.db.is_postgres else len(asks)
    assert (count - before[0], total - before[1]) == (batches, len(asks))
    async with server.services.db.read() as conn:
        for (pk, after), page in zip(asks, pages, strict=True):
            alone = await event_store.read_stream_page(conn, pk, after=after, limit=500)
            assert page == alone


async def test_more_than_a_batch_is_read_in_several(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    pks = await _streams(server, client, app)
    asks = read_batching.MAX_BATCH * 2 + 5
    before = _batches()
    pages = await asyncio.gather(
        *(server.services.page_reads.page(pks["bob"], after=0, limit=500) for _ in range(asks))
    )
    count, total = _batches()
    batches = 4 if server.services.db.is_postgres else asks  # 1, 128, 128, 4; or alone
    assert (count - before[0], total - before[1]) == (batches, asks)
    assert len({tuple(_positions(page)) for page in pages}) == 1


@POSTGRES_ONLY
async def test_a_batch_shares_its_byte_bound_and_its_readers_read_on(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many sockets far behind cannot pull a page each of the bound at once: each page of
    a batch stops at its share, says it is not complete, and the next read goes on.
    (PostgreSQL: on SQLite a read is never out while another is asked, so nothing
    batches.)"""
    pks = await _streams(server, client, app)
    async with server.services.db.read() as conn:
        whole = await event_store.read_stream_page(conn, pks["bob"], after=0, limit=500)
    size = sum(len(event.event_json) for event in whole.events)
    readers = 9  # one alone, then eight together
    monkeypatch.setattr(read_batching, "BATCH_BYTES", size * (readers - 1) // 4)
    monkeypatch.setattr(read_batching, "MIN_PAGE_BYTES", 1)
    reads = server.services.page_reads
    first = await asyncio.gather(
        *(reads.page(pks["bob"], after=0, limit=500) for _ in range(readers))
    )
    assert first[0] == whole  # it went alone, with the whole bound
    for page in first[1:]:
        assert not page.complete
        assert 0 < sum(len(e.event_json) for e in page.events) <= size // 4 + 1000
        cursor, got = page.events[-1].pos, _positions(page)
        while True:  # reading on, alone, gets the rest without a gap
            more = await reads.page(pks["bob"], after=cursor, limit=500)
            got += _positions(more)
            if more.complete:
                break
            cursor = more.events[-1].pos
        assert got == _positions(whole)
