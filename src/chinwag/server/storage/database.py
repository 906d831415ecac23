"""The database handle: engine per URL, migrations on start, transactions.

What differs between the engines (connection setup, pragmas, locking clauses, the dialect's
``INSERT``, the fast path) lives in ``storage/engines/``; this module only holds the
connection(s) and hands out transactions.

SQLite: one connection, opened once and held (see ``engines/sqlite.py`` for how it runs).
SQLite serialises writers anyway, and one connection means transactions queue in the event
loop (on an ``asyncio.Lock``, first come first served) instead of failing with SQLITE_BUSY.
Holding it, rather than checking it out of a one-connection pool per use, matters for speed:
a pool checkout, reset and check-in cost ~130 µs of Python per transaction on the reference
machine, several times the statements inside it.

PostgreSQL gets a real pool; where ordering matters (a user's stream head), rows are locked
in primary-key order so concurrent writers cannot deadlock (``engines/postgres.py``). Reads
run in autocommit: a transaction around them bought nothing (under READ COMMITTED each
statement takes its own snapshot, inside a transaction or not) and cost two round trips,
``BEGIN`` and the ``ROLLBACK`` of the connection's return to the pool: a third of a
socket's catch-up read, which every message delivered through another node costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chinwag.server.database_location import ensure_default_directory
from chinwag.server.storage.engines import postgres, sqlite
from chinwag.server.storage.engines.sqlite import SQLiteOptions, Synchronous
from chinwag.server.storage.file_mode import secure_database_file
from chinwag.server.storage.wal import WalCheckpointer

__all__ = [
    "Database",
    "NestedConnectionError",
    "Transaction",
    "make_engine",
    "sqlite_file",
]

T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
_HOLDING: ContextVar[bool] = ContextVar("chinwag_holding_connection", default=False)

sqlite_file = sqlite.database_file


class NestedConnectionError(RuntimeError):
    """A task asked for a second connection while holding one: with SQLite's single
    connection that would wait forever, so it is a bug everywhere."""


def make_engine(
    url: str, *, sqlite_options: SQLiteOptions | None = None, pg_pool_size: int = postgres.POOL_SIZE
) -> AsyncEngine:
    if url.startswith("sqlite"):
        return sqlite.create_engine(url, sqlite_options or SQLiteOptions())
    if url.startswith("postgresql"):
        return postgres.create_engine(url, pool_size=pg_pool_size)
    raise ValueError(
        f"Unsupported database URL scheme in {url.split(':', 1)[0]!r}; use "
        "sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"
    )


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> tuple[str | None, str | None] | None:
    """Alembic's upgrade to head; (from, to) if it moved. Alembic's own INFO lines (one per
    migration, eight on a new database) are silenced where logging is set up: this is the
    one line an operator needs."""
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(_alembic_config(connection), "head")
    after = MigrationContext.configure(connection).get_current_revision()
    return None if after == before else (before, after)


class AtCommit(Protocol):
    """Work a transaction's jobs leave to be done together just before it commits
    (:meth:`Transaction.before_commit`)."""

    async def settle(self, tx: Transaction) -> None: ...


W = TypeVar("W", bound=AtCommit)


@dataclass
class Transaction:
    """One database transaction plus work to run only once it has committed."""

    conn: AsyncConnection
    is_postgres: bool
    _after_commit: list[Callable[[], None]] = field(default_factory=list)
    _before_commit: dict[type[Any], AtCommit] = field(default_factory=dict)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def before_commit(self, kind: type[W]) -> W:
        """The transaction's one ``kind()``, made on first use and settled before commit,
        or before the next write job of a shared transaction that did not say it may
        leave work for the commit (``Database.write``): so the sends of a batch merge
        together, and no other job sees their merges undone."""
        work = self._before_commit.get(kind)
        if work is None:
            work = self._before_commit[kind] = kind()
        return cast(W, work)

    async def settle(self) -> None:
        """Do the work left for the commit, now."""
        while self._before_commit:
            kind = next(iter(self._before_commit))
            await self._before_commit.pop(kind).settle(self)

    def committed(self) -> None:
        """Run the ``after_commit`` callbacks (the transaction has committed)."""
        for callback in self._after_commit:
            callback()


class Database:
    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous = "FULL",
        pg_lanes: int = 0,
        pg_pool_size: int = postgres.POOL_SIZE,
    ) -> None:
        """``synchronous``: SQLite's durability (``engines/sqlite.py``); ignored elsewhere.
        ``pg_lanes``: PostgreSQL group commit in that many lanes (``pg_batching.py``); 0 runs
        each write in a transaction of its own. ``pg_pool_size``: PostgreSQL connections
        kept open, and the most there will be (``Settings.pg_pool_size``)."""
        self.url = url
        file = sqlite_file(url)
        if file is not None:
            ensure_default_directory(file)
            secure_database_file(file)  # before SQLite creates it with the umask's mode
        self._checkpointer = WalCheckpointer(file, synchronous=synchronous) if file else None
        options = SQLiteOptions(synchronous, autocheckpoint=self._checkpointer is None)
        self.engine = make_engine(url, sqlite_options=options, pg_pool_size=pg_pool_size)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._autocommit = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.is_postgres
            else self.engine
        )
        """PostgreSQL: the same pool, for reads (no BEGIN or ROLLBACK round trips)."""
        self._held: AsyncConnection | None = None
        """SQLite: the one connection, opened on first use (see the module docstring)."""
        self._held_lock = asyncio.Lock()
        from chinwag.server.storage.batching import WriteBatcher  # imports this module
        from chinwag.server.storage.pg_batching import LanedBatcher

        self._batcher = WriteBatcher(self) if not self.is_postgres else None
        self._lanes = LanedBatcher(self, lanes=pg_lanes) if self.is_postgres and pg_lanes else None

    async def migrate(self) -> None:
        """Bring the schema up to date (idempotent; safe when several nodes start at once)."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                await postgres.lock_for_migrations(conn)
            moved = await conn.run_sync(_upgrade)
        if moved is not None and moved[0] is None:
            log.info("database schema created at revision %s", moved[1])
        elif moved is not None:
            log.info("database schema upgraded from revision %s to %s", *moved)

    async def warm(self) -> None:
        """Open the PostgreSQL write lanes' connections (``pg_batching.py``) before the node
        serves; nothing elsewhere."""
        if self._lanes is not None:
            await self._lanes.open()

    @staticmethod
    def _refuse_nested() -> None:
        if _HOLDING.get():
            raise NestedConnectionError("nested database connection in one task")

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """This task holds a connection until the block ends; a second one is refused."""
        self._refuse_nested()
        marker = _HOLDING.set(True)
        try:
            yield
        finally:
            _HOLDING.reset(marker)

    @asynccontextmanager
    async def _connect(self, *, reading: bool = False) -> AsyncIterator[AsyncConnection]:
        with self._holding():
            if self.is_postgres:
                engine = self._autocommit if reading else self.engine
                async with engine.connect() as conn:
                    yield conn
            else:
                async with self._held_lock:
                    conn = await self._held_connection()
                    try:
                        yield conn
                    finally:
                        await self._end_use(conn)

    async def _held_connection(self) -> AsyncConnection:
        if self._held is None or self._held.closed or self._held.invalidated:
            self._held = await self.engine.connect()
            if self._checkpointer is not None:
                self._checkpointer.start(self._held_lock)  # the file is in WAL mode now
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
                await tx.settle()
        tx.committed()

    @asynccontextmanager
    async def transaction_on(self, conn: AsyncConnection) -> AsyncIterator[Transaction]:
        """:meth:`transaction` on a connection the caller keeps between transactions (a
        PostgreSQL write lane's, ``pg_batching.py``), with the same guard against a second
        connection in one task."""
        with self._holding():
            tx = Transaction(conn=conn, is_postgres=self.is_postgres)
            async with conn.begin():
                yield tx
                await tx.settle()
        tx.committed()

    async def write(
        self,
        job: Callable[[Transaction], Awaitable[T]],
        *,
        key: str | None = None,
        leaves_work: bool = False,
    ) -> T:
        """Run ``job`` in a write transaction and return its result once committed.

        Jobs that arrive together share one transaction (group commit: ``batching.py``
        on SQLite, ``pg_batching.py`` on PostgreSQL, where ``key`` picks the lane); a job
        must therefore raise any refusal before it writes. Without PostgreSQL lanes each
        job has its own transaction, and the pool runs them in parallel.

        ``leaves_work``: the job may leave work for the commit
        (:meth:`Transaction.before_commit`) that the next jobs of a shared transaction need
        not see done; before any other job, that work is done.
        """
        self._refuse_nested()
        if self._lanes is not None:
            return await self._lanes.run(job, key=key, leaves_work=leaves_work)
        if self._batcher is None:
            async with self.transaction() as tx:
                return await job(tx)
        return await self._batcher.run(job, leaves_work=leaves_work)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only. On PostgreSQL its statements run in autocommit
        (see the module docstring): a write here would commit at once, not roll back."""
        async with self._connect(reading=True) as conn:
            yield conn

    async def quick_read(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``read`` on a :meth:`read` connection, for short reads on a hot path (a socket's
        catch-up after a doorbell). On PostgreSQL the checkout skips the pre-ping's round
        trip (``engines/postgres.py``), so a backend that ended a moment ago can still be
        handed out: then ``read``, which must be safe to run twice, runs once more on a
        pre-pinged connection."""
        if self.is_postgres:
            try:
                with postgres.without_ping_round_trip():
                    async with self.read() as conn:
                        return await read(conn)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
        async with self.read() as conn:
            return await read(conn)

    async def close(self) -> None:
        if self._lanes is not None:
            await self._lanes.close()
        held, self._held = self._held, None
        if held is not None:
            await held.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        await self.engine.dispose()
