"""The database handle: engine per URL, pragmas, migrations on start, transactions.

SQLite gets WAL, ``synchronous=NORMAL`` and a single pooled connection: SQLite serialises
writers anyway, and one connection means transactions queue in the event loop instead of
failing with SQLITE_BUSY. PostgreSQL gets a real pool; where ordering matters (a user's
stream head), rows are locked in primary-key order so concurrent writers cannot deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "NestedConnectionError", "Transaction", "make_engine"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_HOLDING: ContextVar[bool] = ContextVar("chinwag_holding_connection", default=False)


class NestedConnectionError(RuntimeError):
    """A task asked for a second connection while holding one: with SQLite's single
    connection that would wait forever, so it is a bug everywhere."""


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=30)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)
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
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"

    async def migrate(self) -> None:
        """Bring the schema up to date (idempotent; safe when several nodes start at once)."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                from sqlalchemy import text

                await conn.execute(text("SELECT pg_advisory_xact_lock(7411)"))
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        if _HOLDING.get():
            raise NestedConnectionError("nested database connection in one task")
        marker = _HOLDING.set(True)
        try:
            async with self.engine.connect() as conn:
                yield conn
        finally:
            _HOLDING.reset(marker)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; ``after_commit`` callbacks run only if it committed."""
        async with self._connect() as conn:
            tx = Transaction(conn=conn, is_postgres=self.is_postgres)
            async with conn.begin():
                yield tx
        for callback in tx._after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()
