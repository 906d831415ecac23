"""Hot-path statements: built once, compiled once per dialect, run with little per-call cost.

Why this exists: executing a statement through SQLAlchemy's async ``Connection`` costs
about 50 µs of Python on the 2-core reference machine even when the statement is built
once (cache-key generation, parameter and result processing, the greenlet bridge), and
~110 µs when it is built per call, while SQLite itself answers a primary-key lookup in
about 3 µs. Signing in runs six statements and sending a message a dozen, so that
overhead, not the database, capped throughput (see ``bench/README.md``).

A :class:`Prepared` is an ordinary SQLAlchemy Core statement with named ``bindparam``s.
On SQLite, whose connection chinwag owns and runs inline on the event loop (see
``engines/sqlite.py``), the statement is compiled once with SQLAlchemy's public API
(``compile(dialect=…)``, ``.string``, ``.params``) to ``:name`` placeholders and runs
directly on the ``sqlite3`` connection that the surrounding SQLAlchemy connection holds
(reached through ``driver_connection``), so it joins that connection's transaction and
commits or rolls back with it; driver errors are wrapped in SQLAlchemy's exception types
exactly as SQLAlchemy would wrap them. On PostgreSQL it runs the same way on the asyncpg
connection, once SQLAlchemy has begun the transaction (``prepared_pg.py``). On any other
dialect it simply runs through SQLAlchemy. SQLAlchemy stays the one place SQL is written;
only the per-call machinery is skipped.

Rows come back as plain tuples in the statement's column order, untyped by SQLAlchemy:
callers convert booleans with ``bool()`` (SQLite stores them as 0/1) and must not use
column types that need result processing on SQLite (chinwag stores JSON as text and times
as floats, so none of its hot columns do; on PostgreSQL such a statement is refused the
fast path).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from chinwag.server.storage.engines.sqlite import COMPILE_DIALECT, raw_connection
from chinwag.server.storage.prepared_pg import PgCompiled, compile_for, fail, raw_asyncpg

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Prepared", "raw_sqlite"]

Row = Sequence[Any]
T = TypeVar("T")

raw_sqlite = raw_connection


def _as_sqlalchemy_error(
    call: Callable[[str, Any], sqlite3.Cursor], sql: str, values: Any
) -> sqlite3.Cursor:
    """``call(sql, values)``, with driver errors wrapped as SQLAlchemy wraps them (so
    ``IntegrityError`` and the API's 503 for a locked database work unchanged)."""
    try:
        return call(sql, values)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    defaults: Mapping[str, Any]
    """Values of the statement's own literals (``stream_head + 1`` binds its ``1``)."""

    def values(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A parameter left out is an error from ``sqlite3``, not a silent NULL."""
        return {**self.defaults, **params} if self.defaults else params


class Prepared:
    """One statement with named parameters; see the module docstring."""

    __slots__ = ("_pg", "_pg_compiled", "_postgresql", "_sqlite", "statement")

    def __init__(self, statement: Executable, *, postgresql: Executable | None = None) -> None:
        """``postgresql``: that dialect's spelling when it differs (``ON CONFLICT`` inserts
        are built per dialect in SQLAlchemy)."""
        self.statement = statement
        self._postgresql = postgresql
        self._sqlite: _Compiled | None = None
        self._pg: PgCompiled | None = None
        """None once compiled: it runs through SQLAlchemy (``compile_for``)."""
        self._pg_compiled = False

    def _for(self, conn: AsyncConnection) -> Executable:
        if self._postgresql is not None and conn.dialect.name == "postgresql":
            return self._postgresql
        return self.statement

    def _sqlite_text(self) -> _Compiled:
        found = self._sqlite
        if found is None:
            assert isinstance(self.statement, ClauseElement)
            compiled = self.statement.compile(dialect=COMPILE_DIALECT)
            assert isinstance(compiled, SQLCompiler)
            if "POSTCOMPILE" in compiled.string:
                raise TypeError("expanding IN parameters cannot be prepared; use a plain statement")
            required = {name for name, bind in compiled.binds.items() if bind.required}
            defaults = {k: v for k, v in compiled.params.items() if k not in required}
            found = self._sqlite = _Compiled(compiled.string, defaults)
        return found

    def _on_asyncpg(self, conn: AsyncConnection) -> tuple[asyncpg.Connection, PgCompiled] | None:
        """The asyncpg connection and this statement's text for it, when the fast path
        applies (PostgreSQL, its transaction begun, a statement asyncpg can run as is)."""
        raw = raw_asyncpg(conn)
        if raw is None:
            return None
        if not self._pg_compiled:
            statement = self._for(conn)
            assert isinstance(statement, ClauseElement)
            self._pg = compile_for(statement, conn.dialect)
            self._pg_compiled = True
        return None if self._pg is None else (raw, self._pg)

    @staticmethod
    async def _run_pg(
        conn: AsyncConnection,
        fast: tuple[asyncpg.Connection, PgCompiled],
        params: Mapping[str, Any],
        call: Callable[[asyncpg.Connection], Callable[..., Awaitable[T]]],
    ) -> T:
        """``call(pg)(sql, *args)`` (asyncpg's ``fetch``, ``fetchrow`` or ``execute``), its
        errors raised as SQLAlchemy would (``prepared_pg.fail``)."""
        pg, text = fast
        args = text.args(params)
        try:
            return await call(pg)(text.sql, *args)
        except BaseException as exc:
            await fail(conn, pg, text.sql, args, exc)

    def _run_sqlite(self, raw: sqlite3.Connection, params: Mapping[str, Any]) -> sqlite3.Cursor:
        text = self._sqlite_text()
        return _as_sqlalchemy_error(raw.execute, text.sql, text.values(params))

    async def all(self, conn: AsyncConnection, params: Mapping[str, Any]) -> list[Row]:
        raw = raw_sqlite(conn)
        if raw is not None:
            return self._run_sqlite(raw, params).fetchall()
        fast = self._on_asyncpg(conn)
        if fast is not None:
            records = await self._run_pg(conn, fast, params, lambda pg: pg.fetch)
            return [tuple(r) for r in records]
        return [tuple(r) for r in await conn.execute(self._for(conn), dict(params))]

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Row | None:
        raw = raw_sqlite(conn)
        if raw is not None:
            row: Row | None = self._run_sqlite(raw, params).fetchone()
            return row
        fast = self._on_asyncpg(conn)
        if fast is not None:
            record = await self._run_pg(conn, fast, params, lambda pg: pg.fetchrow)
            return tuple(record) if record is not None else None
        found = (await conn.execute(self._for(conn), dict(params))).first()
        return tuple(found) if found is not None else None

    async def each(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> list[Row]:
        """The statement once per parameter set, in order, and every row they returned, in
        one list. On PostgreSQL's fast path that is one round trip (asyncpg's
        ``fetchmany`` sends every set before it waits), which is why a batch of sends
        locks its conversations and inserts its messages with it
        (``handlers/messages._send_together``).
        Elsewhere the sets run one after another."""
        if not rows:
            return []
        fast = self._on_asyncpg(conn) if raw_sqlite(conn) is None else None
        if fast is None:
            return [row for params in rows for row in await self.all(conn, params)]
        pg, compiled = fast
        args = [compiled.args(params) for params in rows]
        try:
            records = await pg.fetchmany(compiled.sql, args)
        except BaseException as exc:
            await fail(conn, pg, compiled.sql, args, exc, many=True)
        return [tuple(r) for r in records]

    async def rowcount(self, conn: AsyncConnection, params: Mapping[str, Any]) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE without RETURNING."""
        raw = raw_sqlite(conn)
        if raw is not None:
            return int(self._run_sqlite(raw, params).rowcount)
        fast = self._on_asyncpg(conn)
        if fast is not None:
            status: str = await self._run_pg(conn, fast, params, lambda pg: pg.execute)
            return _changed(status)
        result = await conn.execute(self._for(conn), dict(params))
        return int(result.rowcount)

    async def many(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per parameter set (``executemany``); no result."""
        if not rows:
            return
        raw = raw_sqlite(conn)
        if raw is not None:
            text = self._sqlite_text()
            _as_sqlalchemy_error(raw.executemany, text.sql, [text.values(row) for row in rows])
            return
        fast = self._on_asyncpg(conn)
        if fast is not None:
            pg, compiled = fast
            args = [compiled.args(row) for row in rows]
            try:
                await pg.executemany(compiled.sql, args)
            except BaseException as exc:
                await fail(conn, pg, compiled.sql, args, exc, many=True)
            return
        await conn.execute(self._for(conn), [dict(r) for r in rows])


def _changed(status: str) -> int:
    """Rows counted in a command tag (``UPDATE 3``, ``INSERT 0 1``, ``DELETE 0``)."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else -1
