"""WAL checkpoints for SQLite, on a thread of their own instead of inside commits; a bounded log.

By default SQLite checkpoints when a commit pushes the write-ahead log past 1,000 pages:
that commit copies the log back into the database file before it returns. chinwag runs
SQLite on the event loop, so every few dozen messages one commit stalled every socket for
10 ms or more (the 1:1 benchmark's p99 was made of those stalls) and the copying cost the
loop ~70 µs per message on average. Here the server's connection turns automatic
checkpoints off and a thread with its own connection runs ``PASSIVE`` checkpoints a few
times a second. ``sqlite3`` releases the GIL while SQLite works, so the copying runs on
another core, and a passive checkpoint never blocks the writer.

A passive checkpoint alone does not bound the file: the log restarts from its beginning
only when a writer finds it *fully* copied, and under sustained writes there is always a
newer frame than the last checkpoint copied, so the file grew without end (893 MB after a
minute of a busy 1,000-member room, issue #13). So once the ``-wal`` file passes
``WAL_CHECKPOINT_BYTES`` the thread runs a ``TRUNCATE`` checkpoint instead, which copies
the few frames the passive rounds left and cuts the file to zero; the server's next write
starts a fresh log. ``TRUNCATE`` needs the writer to be idle. Left to SQLite's busy
handler it rarely found the gap between two group commits (4 successes in 13 s of
continuous writes, and the log reached 50 MiB), so the thread first takes the server's
connection lock, through the event loop (:meth:`WalCheckpointer.start`): the current
transaction finishes, the next ones queue in the loop (which keeps serving everything
else) for the few milliseconds the checkpoint takes, once per 8 MiB of log. The
connection's ``journal_size_limit`` also cuts the file back whenever the log restarts.
The file thus stays under ``WAL_BOUND_BYTES`` (64 MiB), the documented bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable

from chinwag.server.storage.engines.sqlite import WAL_CHECKPOINT_BYTES, Synchronous

__all__ = ["WalCheckpointer"]

log = logging.getLogger("chinwag.storage")


class WalCheckpointer:
    def __init__(
        self,
        path: str,
        *,
        interval: float = 0.2,
        truncate_above: int = WAL_CHECKPOINT_BYTES,
        synchronous: Synchronous = "FULL",
    ) -> None:
        self._path = path
        self._wal = f"{path}-wal"
        self._interval = interval
        self._truncate_above = truncate_above
        self._synchronous = synchronous
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self.truncations = 0
        """Forced (``TRUNCATE``) checkpoints so far: tests and diagnostics read it."""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, lock: asyncio.Lock | None = None) -> None:
        """``lock``: the server's connection lock, taken (on the running loop) around forced
        checkpoints; without it they rely on SQLite's busy handler."""
        if lock is not None:
            self._loop, self._lock = asyncio.get_running_loop(), lock
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="chinwag-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _wal_size(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        if self._wal_size() <= self._truncate_above:
            self._pragma(conn, "PASSIVE")
        elif self._with_writers_held(lambda: self._pragma(conn, "TRUNCATE")):
            self.truncations += 1

    @staticmethod
    def _pragma(conn: sqlite3.Connection, mode: str) -> bool:
        """One checkpoint; True if it completed (not busy, no error)."""
        try:
            busy, _, _ = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # e.g. busy: the next round tries again
            log.debug("WAL checkpoint (%s) skipped: %s", mode, exc)
            return False
        return not busy

    def _with_writers_held(self, run: Callable[[], bool]) -> bool:
        """``run()`` on this thread while the loop holds the server's connection lock."""
        loop, lock = self._loop, self._lock
        if loop is None or lock is None:
            return run()
        held = threading.Event()
        release: list[asyncio.Event] = []

        async def hold() -> None:
            async with lock:
                release.append(asyncio.Event())
                held.set()
                await release[0].wait()

        try:
            future = asyncio.run_coroutine_threadsafe(hold(), loop)
        except RuntimeError:  # the loop is closed: the server is stopping
            return False
        try:
            while not held.wait(0.05):
                if self._stop.is_set() or future.done():
                    future.cancel()
                    return False
            return run()
        finally:
            if release:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(release[0].set)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=True)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            while not self._stop.wait(self._interval):
                self._checkpoint(conn)
        finally:
            conn.close()
