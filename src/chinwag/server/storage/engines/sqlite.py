"""SQLite: the connection chinwag owns, its pragmas, and the dialect SQLAlchemy drives it with.

The server holds one ``sqlite3`` connection per process (see ``database.py``) and runs it
*inline*, on the event loop's own thread. A driver that hands each call to a worker thread
(aiosqlite: four hand-offs per statement) costs tens of microseconds of wake-ups per call on
small VMs, while SQLite answers a primary-key lookup on a local WAL file in a few. The
trade-off: while another *process* holds the write lock, the loop waits (``busy_timeout``).

To drive that connection through SQLAlchemy's asyncio API without a library's internals,
:class:`InlineSQLiteDialect` is SQLAlchemy's own ``pysqlite`` dialect declared ``is_async``
(a public attribute of the ``Dialect`` interface) and registered under ``sqlite+chinwag``
with SQLAlchemy's public dialect registry. ``AsyncConnection`` runs each call in a greenlet
that calls ``sqlite3`` directly. The connection itself is made by :func:`connect`, here,
with the pragmas below, and wrapped in the small DBAPI facade of ``sqlite_driver.py``;
nothing in ``aiosqlite`` is used.

Durability: ``synchronous=FULL`` by default, so a commit is on disk (the WAL fsynced)
before any caller is answered. ``NORMAL`` skips that fsync: faster, still consistent after
a crash, but the last transactions before a *power loss* (not a process crash) can vanish,
messages the server had already acknowledged among them. Group commit (``batching.py``)
shares one fsync among the sends and sign-ins that arrive together, and the commit runs
off the loop (``sqlite_driver.py``): that is what pays for ``FULL`` (``bench/README.md``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import make_url
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from chinwag.server.storage.engines.sqlite_driver import InlineConnection

__all__ = [
    "COMPILE_DIALECT",
    "DRIVER_NAME",
    "WAL_BOUND_BYTES",
    "WAL_CHECKPOINT_BYTES",
    "InlineSQLiteDialect",
    "SQLiteOptions",
    "Synchronous",
    "connect",
    "create_engine",
    "database_file",
    "insert",
    "pragmas",
    "raw_connection",
]

Synchronous = Literal["FULL", "NORMAL"]

DRIVER_NAME = "sqlite+chinwag"

WAL_BOUND_BYTES = 64 * 1024 * 1024
"""The documented bound on the ``-wal`` file's size under sustained load."""
WAL_CHECKPOINT_BYTES = 8 * 1024 * 1024
"""Past this size the checkpoint thread forces the log back to its start (``wal.py``);
also the ``journal_size_limit`` the file is cut back to whenever the log restarts. A
eighth of the bound leaves room for what arrives during a slow passive round and while a
forced checkpoint waits for the lock (34 MiB was seen with 16 MiB on a loaded machine)."""


@dataclass(frozen=True, slots=True)
class SQLiteOptions:
    synchronous: Synchronous = "FULL"
    autocheckpoint: bool = True
    """False when a :class:`~chinwag.server.storage.wal.WalCheckpointer` runs instead."""


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """``pysqlite`` run inline under SQLAlchemy's asyncio API (see the module docstring)."""

    is_async = True
    supports_statement_cache = True

    def get_driver_connection(self, connection: Any) -> Any:
        """The ``sqlite3`` connection itself, for the prepared statements' fast path."""
        return connection.raw if isinstance(connection, InlineConnection) else connection


registry.register("sqlite.chinwag", __name__, "InlineSQLiteDialect")

COMPILE_DIALECT = InlineSQLiteDialect(paramstyle="named")
"""Compiles prepared statements to ``:name`` placeholders, which ``sqlite3`` binds from a
dict: no reliance on the compiler's (internal) record of positional order."""


def pragmas(options: SQLiteOptions) -> list[str]:
    chosen = [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={options.synchronous}",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
        f"PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}",
    ]
    if not options.autocheckpoint:
        chosen.append("PRAGMA wal_autocheckpoint=0")
    return chosen


def connect(path: str, options: SQLiteOptions) -> InlineConnection:
    """A connection for the event loop's thread, with chinwag's pragmas applied; with
    ``FULL``, commits (and their fsync) run on a thread of its own (``sqlite_driver.py``).

    ``isolation_level`` stays ``sqlite3``'s default (a deferred ``BEGIN`` before the first
    write), which is what SQLAlchemy's ``pysqlite`` dialect expects."""
    off_loop = options.synchronous == "FULL"
    conn = sqlite3.connect(path, check_same_thread=not off_loop, cached_statements=512)
    try:
        for pragma in pragmas(options):
            conn.execute(pragma).fetchall()
    except BaseException:
        conn.close()
        raise
    return InlineConnection(conn, commit_off_loop=off_loop)


def database_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for in-memory databases and other engines."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" and not path.startswith("file::memory:") else None


def create_engine(url: str, options: SQLiteOptions) -> AsyncEngine:
    """One pooled connection (held by ``Database``); ``hide_parameters`` keeps message
    bodies, token hashes and secrets out of database errors' text, which gets logged."""
    path = make_url(url).database or ":memory:"
    return create_async_engine(
        make_url(url).set(drivername=DRIVER_NAME),
        creator=lambda: connect(path, options),
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=30,
        hide_parameters=True,
    )


def raw_connection(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn``, through SQLAlchemy's public accessors."""
    sync = conn.sync_connection
    if sync is None or conn.dialect.name != "sqlite":
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, sqlite3.Connection) else None


insert = sqlite_insert
