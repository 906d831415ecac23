"""Group commit: write jobs that arrive together share one SQLite transaction.

Why: with SQLite on the event loop a message costs a few hundred microseconds of Python,
of which the transaction itself (begin, commit, the WAL write) is a fifth. Jobs that
arrive while others are queued (the requests read from the sockets in one turn of the
loop) run one after another in a single transaction, committed once; each caller is
answered only after that commit, so nothing is acknowledged that could still be lost.
Order is arrival order, and the jobs run serially, so per-conversation positions and
per-user stream positions stay dense exactly as with one transaction per job.

A job that refuses (raises :class:`~chinwag.core.errors.ChinwagError`) must do so before
it writes anything; the batcher checks that on the connection's change counter, and if a
refusal did write, or anything else fails (a database error, a bug), the whole batch is
rolled back and every job runs again alone, so one bad job costs the others only time.
A batch of one that refuses is simply rolled back, its refusal answered.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from chinwag.core.errors import ChinwagError
from chinwag.server import metrics
from chinwag.server.storage.failures import is_storage_unavailable
from chinwag.server.storage.prepared import raw_sqlite

if TYPE_CHECKING:
    from chinwag.server.storage.database import Database, Transaction

__all__ = ["Job", "Together", "WriteBatcher"]

T = TypeVar("T")
Job = Callable[["Transaction"], Awaitable[T]]
Together = Callable[["Transaction", list[Any]], Awaitable[list[T | ChinwagError] | None]]
"""A job's optional ``together`` attribute: runs a whole batch of such jobs (in order, in
the batch's transaction) with fewer statements than one by one, and answers each job's
result in order, or its refusal (a :class:`ChinwagError` returned, not raised: that job
wrote nothing, and the others stand); or None, having written nothing, when this batch
does not suit it (the jobs then run one by one in the same transaction). A failure after
it wrote reruns every job alone, as any failure does. Only lanes use it
(``pg_batching.py``): a statement that covers several jobs saves a round trip on
PostgreSQL and nothing on SQLite."""


@dataclass(slots=True)
class _Queued(Generic[T]):
    job: Job[T]
    leaves_work: bool = False
    """The job may leave work for the commit (``Database.write``)."""
    done: asyncio.Future[T] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _RefusalWrote(Exception):
    """A job refused after it had written: the batch cannot keep its other jobs."""


class _Refused(Exception):
    """The only job of a batch refused: its transaction is rolled back, the refusal kept."""

    def __init__(self, refusal: ChinwagError) -> None:
        super().__init__()
        self.refusal = refusal


def _rerun_reason(failure: Exception) -> str:
    if isinstance(failure, _RefusalWrote):
        return "refusal"
    return "database" if is_storage_unavailable(failure) else "error"


class WriteBatcher:
    def __init__(self, db: Database, *, max_batch: int = 64) -> None:
        self._db = db
        self._max = max_batch
        self._queue: list[_Queued[Any]] = []
        self._draining = False

    async def run(self, job: Job[T], *, leaves_work: bool = False) -> T:
        queued: _Queued[T] = _Queued(job, leaves_work)
        self._queue.append(queued)
        if not self._draining:
            self._draining = True
            # A task of its own: the jobs must not run in (and be cancelled with) the task
            # of whichever caller happened to arrive first.
            # A fresh context, too: not the caller's (which may say it holds a connection).
            asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        return await queued.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                metrics.batch_committed(len(batch))
                if len(batch) == 1 and not self._single_in_batch_transaction:
                    await self._alone(batch[0])
                else:
                    await self._together(batch)
        finally:
            self._draining = False

    async def _together(self, batch: list[_Queued[Any]]) -> None:
        outcomes: list[tuple[_Queued[Any], Any, ChinwagError | None]] = []
        try:
            async with self._batch_transaction() as tx:
                raw = raw_sqlite(tx.conn)
                together = self._together_of(batch)
                results = await together(tx, [q.job for q in batch]) if together else None
                if results is not None:
                    outcomes = [
                        (queued, None, result) if isinstance(result, ChinwagError)
                        else (queued, result, None)
                        for queued, result in zip(batch, results, strict=True)
                    ]  # fmt: skip
                for queued in batch if results is None else ():
                    if not queued.leaves_work:
                        await tx.settle()  # what the jobs before left: done before this one
                    before = raw.total_changes if raw is not None else 0
                    try:
                        outcomes.append((queued, await queued.job(tx), None))
                    except ChinwagError as refusal:
                        if raw is not None and raw.total_changes == before:
                            outcomes.append((queued, None, refusal))
                        elif len(batch) == 1:
                            raise _Refused(refusal) from refusal
                        else:
                            raise _RefusalWrote from refusal
        except _Refused as only:
            outcomes = [(batch[0], None, only.refusal)]
        except Exception as failure:
            metrics.batch_rerun(_rerun_reason(failure))
            for queued in batch:
                await self._alone(queued)
            return
        for queued, result, refused in outcomes:
            if queued.done.done():
                continue
            if refused is not None:
                queued.done.set_exception(refused)
            else:
                queued.done.set_result(result)

    _runs_together: bool = False
    """Whether batches of jobs that can run together do (:data:`Together`)."""

    def _together_of(self, batch: list[_Queued[Any]]) -> Together[Any] | None:
        """The batch's :data:`Together`, when every job has the same one and may leave
        work for the commit (a settle between jobs would need them run one by one)."""
        if not self._runs_together or len(batch) < 2:
            return None
        together = getattr(batch[0].job, "together", None)
        if together is None:
            return None
        for queued in batch:
            if not queued.leaves_work or getattr(queued.job, "together", None) is not together:
                return None
        return cast("Together[Any]", together)

    _single_in_batch_transaction: bool = False
    """Whether a batch of one runs as a batch (subclasses whose batch transaction is the
    cheaper one) or alone."""

    def _batch_transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """The transaction a batch shares; for subclasses (a job alone always gets
        :meth:`Database.transaction`)."""
        return self._db.transaction()

    async def _alone(self, queued: _Queued[Any]) -> None:
        try:
            async with self._db.transaction() as tx:
                result = await queued.job(tx)
        except BaseException as exc:  # the caller gets whatever the job raised
            if not queued.done.done():
                queued.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not queued.done.done():
            queued.done.set_result(result)
