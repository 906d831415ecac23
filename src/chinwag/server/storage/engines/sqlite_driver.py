"""The DBAPI facade SQLAlchemy's asyncio API drives chinwag's own ``sqlite3`` connection with.

``AsyncConnection.execute`` insists that a statement's execution *awaits* at least once
(an asyncio driver always does). ``sqlite3`` never does: it runs inline, on the event loop's
thread (see ``sqlite.py`` for why). So :meth:`InlineCursor.execute` passes through
SQLAlchemy's ``await_only`` once, with an awaitable that is already complete, and then calls
``sqlite3``. That is one greenlet switch there and back (about a microsecond) per statement,
where aiosqlite's inline subclass took four; nothing else is adapted.

Two points of contact with SQLAlchemy are not documented API, so SQLAlchemy is pinned
``<2.2`` in ``pyproject.toml`` and ``tests/server/test_storage_engines.py`` fails once the
installed version passes the pin (re-check both, then move the pin):

- ``sqlalchemy.util.await_only``: public by name, undocumented, to be deprecated in 2.2 in
  favour of ``await_``;
- ``_async_soft_close``: SQLAlchemy's asyncio layer calls it on every DBAPI cursor after a
  buffered ``execute`` (its own adapters pre-fetch rows there); ``sqlite3`` cursors hold
  nothing to release, so ours does nothing.

Neither reaches into another library's objects: this module only *provides* what the
asyncio layer calls. Everything else is PEP 249, forwarded to ``sqlite3``.

With ``synchronous=FULL`` a commit waits for the log's fsync (4 ms median on the reference
VM, 10 ms at worst), which inline would stall every socket. So there, and only there,
:meth:`InlineConnection.commit` runs on a thread of the connection's own (``sqlite3``
releases the GIL while it syncs) and the loop serves everything else meanwhile; the
transaction's task still waits for it, and nobody else can use the connection, which the
database's lock hands to one task at a time (hence ``check_same_thread=False``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.util import await_only

__all__ = ["InlineConnection", "InlineCursor"]


class _Ready:
    """An awaitable that is already done: awaiting it does not suspend the task."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that finishes at once


_READY = _Ready()


class InlineCursor:
    """PEP 249 cursor over a ``sqlite3`` cursor; see the module docstring."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    def execute(self, operation: str, parameters: Any = ()) -> InlineCursor:
        await_only(_READY)
        self._cursor.execute(operation, parameters)
        return self

    def executemany(self, operation: str, parameters: Sequence[Any]) -> InlineCursor:
        await_only(_READY)
        self._cursor.executemany(operation, parameters)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def close(self) -> None:
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's asyncio layer (see the module docstring): nothing to do."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class InlineConnection:
    """PEP 249 connection over chinwag's ``sqlite3`` connection, which stays reachable as
    :attr:`raw` (the dialect's ``get_driver_connection``) for prepared statements."""

    __slots__ = ("_committer", "raw")

    def __init__(self, raw: sqlite3.Connection, *, commit_off_loop: bool = False) -> None:
        """``commit_off_loop``: commits run on a thread of this connection's own (see the
        module docstring); ``raw`` must then allow use from that thread."""
        self.raw = raw
        self._committer = (
            ThreadPoolExecutor(1, thread_name_prefix="chinwag-sqlite-commit")
            if commit_off_loop
            else None
        )

    def cursor(self) -> InlineCursor:
        return InlineCursor(self.raw.cursor())

    def commit(self) -> None:
        committer = self._committer
        if committer is None or not self.raw.in_transaction:
            self.raw.commit()
            return

        async def off_loop() -> None:
            """Not cancellable half-way: the connection must not be used (a rollback on
            cancel) while the thread still commits, so a cancel waits, then re-raises."""
            done = asyncio.get_running_loop().run_in_executor(committer, self.raw.commit)
            cancelled = False
            while not done.done():
                try:
                    await asyncio.shield(done)
                except asyncio.CancelledError:
                    cancelled = True
            done.result()
            if cancelled:
                raise asyncio.CancelledError

        try:
            await_only(off_loop())
        except MissingGreenlet:  # called outside SQLAlchemy's asyncio layer: commit here
            self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()
        if self._committer is not None:
            self._committer.shutdown(wait=False)

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self.raw.isolation_level = value

    def create_function(self, name: str, narg: int, func: Callable[..., Any], **kw: Any) -> None:
        self.raw.create_function(name, narg, func, **kw)
