"""Group commit on PostgreSQL: sends that arrive together share a transaction, in lanes.

SQLite has one writer, so its group commit (``batching.py``) is one queue drained by one
task. On PostgreSQL a single queue would serialise every write behind one connection's
round trips, so there are several *lanes*, each such a queue on a connection of its own,
drained in parallel; the jobs in one lane's batch share one ``BEGIN``/``COMMIT`` (one WAL
flush) and each is answered only after that commit, exactly as on SQLite.

A lane keeps its connection between batches. Checking one out of the pool per batch cost
a pre-ping (a round trip, to find a backend dropped while pooled) and the pool's Python,
and each shared transaction a ``SET LOCAL lock_timeout``: three of a one-send batch's
eleven round trips. The lane's connection gets its lock timeout once, for the session, and
a batch of one runs on it too. If that connection was dropped (``pg_terminate_backend``, a
restart), the batch fails on its first statement and its jobs run again alone on pooled,
pre-pinged connections, exactly as after a lock conflict, and the lane connects afresh
for its next batch; a request sees a slower answer, not a 503.

A job's ``key`` (a send's conversation) picks its lane, so the writes to one conversation
queue in one lane, in arrival order, and two lanes never wait on each other for a
conversation's row. Two lanes can still meet on a user's row (a user in conversations of
both); each job locks its users in primary-key order, but a batch holds the locks of its
earlier jobs, so two batches can deadlock. A lane's transaction therefore waits at most
``BATCH_LOCK_TIMEOUT`` for any lock instead of PostgreSQL's one-second deadlock check;
past it the batch is rolled back and runs again with every job in a transaction of its
own (``batching.py``) on a pooled connection, with PostgreSQL's usual lock waits, which
cannot hold one job's locks while waiting for another's. So a conflict costs time, not
correctness. Jobs without a key go to the lanes in turn.

A batch whose jobs all say they can run together (``batching.Together``: the sends of
users, ``handlers/messages._send_together``) runs as one: its conversations' locks in two
round trips and its inserts in one, where one by one each send cost two.

A refusal on PostgreSQL cannot be checked for having written nothing (SQLite's change
counter has no cheap equivalent), so any refusal in a batch of several reruns the batch
job by job; a batch of one is simply rolled back.
"""

from __future__ import annotations

import contextlib
import itertools
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.batching import Job, WriteBatcher
from chinwag.server.storage.engines.postgres import ARRAY_TYPES

if TYPE_CHECKING:
    from chinwag.server.storage.database import Database, Transaction

__all__ = ["BATCH_LOCK_TIMEOUT", "DEFAULT_LANES", "LanedBatcher"]

BATCH_LOCK_TIMEOUT = "200ms"
_LIMIT_LOCK_WAITS = text(f"SET lock_timeout = '{BATCH_LOCK_TIMEOUT}'")
_LEARN_ARRAY_TYPES = text(ARRAY_TYPES)

T = TypeVar("T")

DEFAULT_LANES = 4
"""Lanes (and so pooled connections) writing at once; the pool has ``pg_pool_size`` (20),
the rest serve reads."""


class _Lane(WriteBatcher):
    _single_in_batch_transaction: bool = True
    _runs_together: bool = True

    def __init__(self, db: Database, *, max_batch: int) -> None:
        super().__init__(db, max_batch=max_batch)
        self._conn: AsyncConnection | None = None

    async def connection(self) -> AsyncConnection:
        """The lane's connection, connected afresh if it has none or it was dropped, with
        its lock timeout set and the array types learnt."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            self._conn = None
            conn = await self._db.engine.connect()
            try:
                await conn.execute(_LIMIT_LOCK_WAITS)
                await conn.execute(_LEARN_ARRAY_TYPES)  # (again: ``engines/postgres.py``)
                await conn.commit()
            except BaseException:
                await _discard(conn)
                raise
            self._conn = conn
        return conn

    @asynccontextmanager
    async def _batch_transaction(self) -> AsyncIterator[Transaction]:
        async with self._db.transaction_on(await self.connection()) as tx:
            yield tx

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


class LanedBatcher:
    def __init__(self, db: Database, *, lanes: int = DEFAULT_LANES, max_batch: int = 64) -> None:
        self._lanes: list[_Lane] = [_Lane(db, max_batch=max_batch) for _ in range(max(1, lanes))]
        self._turn = itertools.cycle(self._lanes)

    def _lane(self, key: str | None) -> _Lane:
        if key is None:
            return next(self._turn)
        return self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]

    async def run(self, job: Job[T], *, key: str | None = None, leaves_work: bool = False) -> T:
        return await self._lane(key).run(job, leaves_work=leaves_work)

    async def open(self) -> None:
        """Connect every lane now, so a node's first sends do not pay for it (a backend's
        start, asyncpg's type lookups: ``engines/postgres.py``)."""
        for lane in self._lanes:
            await lane.connection()

    async def close(self) -> None:
        """Give the lanes' connections back (``Database.close``, after the writes drained)."""
        for lane in self._lanes:
            await lane.close()
