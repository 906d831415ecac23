"""Catch-up reads asked for while another is out share one statement.

Why: a doorbell from another node names many users at once (the Redis broker coalesces
a turn's stream hints into one, ``broker/wire.py``), and every socket of every user it
names then reads its stream past its cursor. Read one by one, each socket cost a pool
checkout and a statement, in chinwag's process and in PostgreSQL's, and two nodes
needed ~1.4 times one node's CPU per message (``bench/README.md``). Here those reads
are coalesced (``server/coalescing.py``): a read goes at once while none is out, and
the reads asked for while one is out go together as soon as it returns, one
checkout and, on PostgreSQL, one statement (``events.read_stream_pages``, the page query
joined ``LATERAL`` to the requests). SQLite answers without giving the loop a turn, so there
each read goes alone, as before.

One read or batch is out at a time, so a burst of doorbells costs a few statements,
not one per socket, and never more than one pooled connection. A batch
reads at most :data:`MAX_BATCH` pages, and its pages share :data:`BATCH_BYTES`: each
page stops at its share (at least :data:`MIN_PAGE_BYTES`; a single larger event still
comes alone), so one batch holds about as much as one page read alone used to, where 128
sockets far behind could otherwise pull 128 MiB at once. A page cut short says so
(``StoredPage.complete``), and its socket reads on.

Only the plain read after a hint is batched. A read that merges first (a replay, a
resync, a revocation) writes, under the user's lock, and goes on alone (``ws.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chinwag.server import metrics
from chinwag.server.coalescing import Coalescer
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


class PageReads:
    """A node's batched stream reads (one per ``Database``; see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._coalescer: Coalescer[PageRequest, StoredPage] = Coalescer(
            self._read, max_batch=MAX_BATCH, observe=metrics.pages_read_together
        )

    async def page(self, user_pk: int, *, after: int, limit: int) -> StoredPage:
        """The user's stream after ``after``: at most ``limit`` events, and whether that was
        all of them, as ``events.read_stream_page`` reads it (never merging first)."""
        return await self._coalescer(PageRequest(user_pk, after, limit))

    async def _read(self, requests: Sequence[PageRequest]) -> list[StoredPage]:
        share = min(max(BATCH_BYTES // len(requests), MIN_PAGE_BYTES), MAX_PAGE_BYTES)
        return await self._db.quick_read(
            lambda conn: read_stream_pages(conn, requests, max_bytes=share)
        )
