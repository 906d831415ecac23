"""Catch-up reads that arrive together share one statement.

Why: a doorbell from another node names many users at once (the Redis broker coalesces
a turn's stream hints into one, ``broker/wire.py``), and every socket of every user it
names then reads its stream past its cursor. Read one by one, each socket cost a pool
checkout and a statement, in chinwag's process and in PostgreSQL's, and two nodes
needed ~1.4 times one node's CPU per message (``bench/README.md``). Here the reads asked for
while another is running, or in the same turn of the loop, wait for it and then go as
one: one checkout and, on PostgreSQL, one statement (``events.read_stream_pages``); on
SQLite, whose statements cost no round trip, the same pages read one after another on
the one checkout.

One batch runs at a time, so a burst of doorbells costs a few statements, not one per
socket, and never more than one pooled connection. A batch reads at most
:data:`MAX_BATCH` pages, and its pages share :data:`BATCH_BYTES`: each page stops at its
share (at least :data:`MIN_PAGE_BYTES`; a single larger event still comes alone), so one
batch holds about as much as one page read alone used to, where 128 sockets far behind
could otherwise pull 128 MiB at once. A page cut short says so (``StoredPage.complete``),
and its socket reads on.

Only the plain read after a hint is batched. A read that merges first (a replay, a
resync, a revocation) writes, under the user's lock, and goes on alone (``ws.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chinwag.server import metrics
from chinwag.server.storage.events import (
    MAX_PAGE_BYTES,
    PageRequest,
    StoredPage,
    read_stream_pages,
)

if TYPE_CHECKING:
    from chinwag.server.storage.database import Database

__all__ = ["BATCH_BYTES", "MAX_BATCH", "MIN_PAGE_BYTES", "PageReads"]

MAX_BATCH = 128
"""Pages read in one statement at most; the rest wait for the next."""

BATCH_BYTES = 4 * MAX_PAGE_BYTES
"""Event JSON one batch reads at most, shared by its pages (beyond single large events)."""

MIN_PAGE_BYTES = 64 * 1024
"""A page's share of :data:`BATCH_BYTES` is never less (then a full batch may read
``MAX_BATCH`` times this: 8 MiB)."""


@dataclass(slots=True)
class _Wanted:
    request: PageRequest
    done: asyncio.Future[StoredPage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PageReads:
    """A node's batched stream reads (one per ``Database``; see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Wanted] = []
        self._draining = False

    async def page(self, user_pk: int, *, after: int, limit: int) -> StoredPage:
        """The user's stream after ``after``: at most ``limit`` events, and whether that was
        all of them, as ``events.read_stream_page`` reads it (never merging first)."""
        wanted = _Wanted(PageRequest(user_pk, after, limit))
        self._queue.append(wanted)
        if not self._draining:
            self._draining = True
            # Its own task, so that no caller's cancellation cuts the others' read, and a
            # fresh context: not the caller's, which may say it holds a connection.
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await wanted.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._read(batch)
        finally:
            self._draining = False

    async def _read(self, batch: list[_Wanted]) -> None:
        requests = [wanted.request for wanted in batch]
        share = max(BATCH_BYTES // len(batch), MIN_PAGE_BYTES)
        metrics.pages_read_together(len(batch))
        try:
            pages = await self._db.quick_read(
                lambda conn: read_stream_pages(conn, requests, max_bytes=min(share, MAX_PAGE_BYTES))
            )
        except Exception as failure:  # each reader sees the failure its own read would have
            for wanted in batch:
                if not wanted.done.done():
                    wanted.done.set_exception(failure)
            return
        for wanted, page in zip(batch, pages, strict=True):
            if not wanted.done.done():
                wanted.done.set_result(page)
