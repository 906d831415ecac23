"""Group commit on PostgreSQL: sends that arrive together share a transaction, in lanes.

SQLite has one writer, so its group commit (``batching.py``) is one queue drained by one
task. On PostgreSQL a single queue would serialise every write behind one connection's
round trips, so there are several *lanes*, each such a queue on a connection of its own,
drained in parallel; the jobs in one lane's batch share one ``BEGIN``/``COMMIT`` (one WAL
flush) and each is answered only after that commit, exactly as on SQLite.

A job's ``key`` (a send's conversation) picks its lane, so the writes to one conversation
queue in one lane, in arrival order, and two lanes never wait on each other for a
conversation's row. Two lanes can still meet on a user's row (a user in conversations of
both); each job locks its users in primary-key order, but a batch holds the locks of its
earlier jobs, so two batches can deadlock. A shared transaction therefore waits at most
``BATCH_LOCK_TIMEOUT`` for any lock (``SET LOCAL lock_timeout``) instead of PostgreSQL's
one-second deadlock check; past it the batch is rolled back and runs again with every job
in a transaction of its own (``batching.py``), which cannot hold one job's locks while
waiting for another's. So a conflict costs time, not correctness. Jobs without a key go to
the lanes in turn.

A refusal on PostgreSQL cannot be checked for having written nothing (SQLite's change
counter has no cheap equivalent), so any refusal in a batch reruns the batch job by job.
"""

from __future__ import annotations

import itertools
import zlib
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import text

from chinwag.server.storage.batching import Job, WriteBatcher

if TYPE_CHECKING:
    from chinwag.server.storage.database import Database, Transaction

__all__ = ["BATCH_LOCK_TIMEOUT", "DEFAULT_LANES", "LanedBatcher"]

BATCH_LOCK_TIMEOUT = "200ms"
_LIMIT_LOCK_WAITS = text(f"SET LOCAL lock_timeout = '{BATCH_LOCK_TIMEOUT}'")

T = TypeVar("T")

DEFAULT_LANES = 4
"""Lanes (and so pooled connections) writing at once; the pool has ``pg_pool_size`` (20),
the rest serve reads."""


class _Lane(WriteBatcher):
    async def _begin_batch(self, tx: Transaction) -> None:
        await tx.conn.execute(_LIMIT_LOCK_WAITS)


class LanedBatcher:
    def __init__(self, db: Database, *, lanes: int = DEFAULT_LANES, max_batch: int = 64) -> None:
        self._lanes: list[WriteBatcher] = [
            _Lane(db, max_batch=max_batch) for _ in range(max(1, lanes))
        ]
        self._turn = itertools.cycle(self._lanes)

    def _lane(self, key: str | None) -> WriteBatcher:
        if key is None:
            return next(self._turn)
        return self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]

    async def run(self, job: Job[T], *, key: str | None = None) -> T:
        return await self._lane(key).run(job)
