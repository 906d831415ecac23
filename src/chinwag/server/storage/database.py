"""The database handle: engine per URL, pragmas, migrations on start, transactions.

SQLite gets WAL, ``synchronous=NORMAL`` and a single connection, opened once and held: SQLite
serialises writers anyway, and one connection means transactions queue in the event loop
(on an ``asyncio.Lock``, first come first served) instead of failing with SQLITE_BUSY.
Holding it, rather than checking it out of a one-connection pool per use, matters for speed:
a pool checkout, reset and check-in cost ~130 µs of Python per transaction on the reference
machine, several times the statements inside it.

PostgreSQL gets a real pool; where ordering matters (a user's stream head), rows are locked
in primary-key order so concurrent writers cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chinwag.server.storage.file_mode import secure_database_file
from chinwag.server.storage.wal import WalCheckpointer

__all__ = [
    "Database",
    "InlineSQLiteConnection",
    "NestedConnectionError",
    "Transaction",
    "make_engine",
]

T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"
_HOLDING: ContextVar[bool] = ContextVar("chinwag_holding_connection", default=False)


class NestedConnectionError(RuntimeError):
    """A task asked for a second connection while holding one: with SQLite's single
    connection that would wait forever, so it is a bug everywhere."""


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's interface, but every call runs on the event loop's own thread.

    aiosqlite hands each call (cursor, execute, fetch, close: four per statement) to a
    worker thread and back; on small VMs each hand-off costs tens of microseconds of
    wake-ups, while the SQLite call itself, on a local WAL file, costs a few. chinwag holds
    one SQLite connection per process, so calls are serial anyway. The trade-off: while
    another *process* holds the write lock, the loop waits up to ``busy_timeout``.
    """

    def __init__(self, path: str) -> None:
        super().__init__(lambda: sqlite3.connect(path, check_same_thread=True), iter_chunk_size=64)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineSQLiteConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineSQLiteConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for in-memory databases and other engines."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" and not path.startswith("file::memory:") else None


def make_engine(url: str, *, background_checkpoints: bool = False) -> AsyncEngine:
    """``background_checkpoints``: the caller runs a :class:`WalCheckpointer`, so the
    connection's own automatic checkpoints are turned off.

    ``hide_parameters``: a database error's text (logged with its traceback) would otherwise
    carry the statement's parameters: message bodies, token hashes, HS256 secrets."""
    if url.startswith("sqlite"):
        path = make_url(url).database or ":memory:"

        async def connect() -> InlineSQLiteConnection:
            return await InlineSQLiteConnection(path)

        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=30,
            async_creator=connect,
            hide_parameters=True,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            if background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        return create_async_engine(
            url, pool_size=10, max_overflow=10, pool_pre_ping=False, hide_parameters=True
        )
    raise ValueError(
        f"Unsupported database URL scheme in {url.split(':', 1)[0]!r}; use "
        "sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"
    )


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@dataclass
class Transaction:
    """One database transaction plus work to run only once it has committed."""

    conn: AsyncConnection
    is_postgres: bool
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        file = sqlite_file(url)
        if file is not None:
            secure_database_file(file)  # before SQLite creates it with the umask's mode
        self._checkpointer = WalCheckpointer(file) if file else None
        self.engine = make_engine(url, background_checkpoints=self._checkpointer is not None)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._held: AsyncConnection | None = None
        """SQLite: the one connection, opened on first use (see the module docstring)."""
        self._held_lock = asyncio.Lock()
        from chinwag.server.storage.batching import WriteBatcher  # imports this module

        self._batcher = None if self.is_postgres else WriteBatcher(self)

    async def migrate(self) -> None:
        """Bring the schema up to date (idempotent; safe when several nodes start at once)."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                from sqlalchemy import text

                await conn.execute(text("SELECT pg_advisory_xact_lock(7411)"))
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))

    @staticmethod
    def _refuse_nested() -> None:
        if _HOLDING.get():
            raise NestedConnectionError("nested database connection in one task")

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        self._refuse_nested()
        marker = _HOLDING.set(True)
        try:
            if self.is_postgres:
                async with self.engine.connect() as conn:
                    yield conn
            else:
                async with self._held_lock:
                    conn = await self._held_connection()
                    try:
                        yield conn
                    finally:
                        await self._end_use(conn)
        finally:
            _HOLDING.reset(marker)

    async def _held_connection(self) -> AsyncConnection:
        if self._held is None or self._held.closed or self._held.invalidated:
            self._held = await self.engine.connect()
            if self._checkpointer is not None:
                self._checkpointer.start()  # the file is in WAL mode now
        return self._held

    async def _end_use(self, conn: AsyncConnection) -> None:
        """Leave the held connection clean for the next user: end what a read autobegan
        (a SELECT opens no SQLite transaction, but SQLAlchemy still counts one). If even
        that fails, or the task was cancelled meanwhile, the connection is dropped and the
        next user opens a fresh one."""
        try:
            if conn.in_transaction():
                await conn.rollback()
        except BaseException:
            self._held = None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; ``after_commit`` callbacks run only if it committed."""
        async with self._connect() as conn:
            tx = Transaction(conn=conn, is_postgres=self.is_postgres)
            async with conn.begin():
                yield tx
        for callback in tx._after_commit:
            callback()

    async def write(self, job: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``job`` in a write transaction and return its result once committed.

        On SQLite, jobs that arrive together share one transaction (group commit, see
        ``batching.py``); a job must therefore raise any refusal before it writes. On
        PostgreSQL each job has its own transaction, and the pool runs them in parallel.
        """
        self._refuse_nested()
        if self._batcher is None:
            async with self.transaction() as tx:
                return await job(tx)
        return await self._batcher.run(job)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
            yield conn

    async def close(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        await self.engine.dispose()
