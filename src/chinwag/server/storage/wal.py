"""WAL checkpoints for SQLite, on a thread of their own instead of inside commits.

By default SQLite checkpoints when a commit pushes the write-ahead log past 1,000 pages:
that commit copies the log back into the database file before it returns. chinwag runs
SQLite on the event loop, so every few dozen messages one commit stalled every socket for
10 ms or more (the 1:1 benchmark's p99 was made of those stalls) and the copying cost the
loop ~70 µs per message on average. Here the server's connection turns automatic
checkpoints off and a thread with its own connection runs ``PASSIVE`` checkpoints a few
times a second. ``sqlite3`` releases the GIL while SQLite works, so the copying runs on
another core; a passive checkpoint never blocks the writer, and with no other readers the
log restarts from its beginning once it has been copied, so it stays small.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["WalCheckpointer"]

log = logging.getLogger("chinwag.storage")


class WalCheckpointer:
    def __init__(self, path: str, *, interval: float = 0.2) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
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

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=True)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. busy: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()
