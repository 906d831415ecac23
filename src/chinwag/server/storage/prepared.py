"""Hot-path statements: built once, compiled once per dialect, run with little per-call cost.

Why this exists: executing a statement through SQLAlchemy's async ``Connection`` costs
about 50 µs of Python on the 2-core reference machine even when the statement is built
once (cache-key generation, parameter and result processing, the greenlet bridge), and
~110 µs when it is built per call, while SQLite itself answers a primary-key lookup in
about 3 µs. Signing in runs six statements and sending a message a dozen, so that
overhead, not the database, capped throughput (see ``bench/README.md``).

A :class:`Prepared` is an ordinary SQLAlchemy Core statement with named ``bindparam``s.
On SQLite, whose connection chinwag runs inline on the event loop (see ``database.py``),
the statement's compiled text runs directly on the ``sqlite3`` connection that the
surrounding SQLAlchemy connection holds, so it joins that connection's transaction and
commits or rolls back with it; driver errors are wrapped in SQLAlchemy's exception types
exactly as SQLAlchemy would wrap them. On every other dialect it simply runs through
SQLAlchemy. SQLAlchemy stays the one place SQL is written; only the per-call machinery is
skipped.

Rows come back as plain tuples in the statement's column order, untyped by SQLAlchemy:
callers convert booleans with ``bool()`` (SQLite stores them as 0/1) and must not use
column types that need result processing (chinwag stores JSON as text and times as
floats, so none of its hot columns do).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from chinwag.server.storage.database import InlineSQLiteConnection

__all__ = ["Prepared", "raw_sqlite"]

Row = Sequence[Any]


def raw_sqlite(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` when it is chinwag's inline driver."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.sync_connection.connection.driver_connection if conn.sync_connection else None
    if isinstance(driver, InlineSQLiteConnection):
        raw = driver._connection
        return raw if isinstance(raw, sqlite3.Connection) else None
    return None


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
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    """Values of the statement's own literals (``stream_head + 1`` binds its ``1``)."""

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[n] if n in params else self.defaults[n] for n in self.names]


class Prepared:
    """One statement with named parameters; see the module docstring."""

    __slots__ = ("_compiled", "_postgresql", "statement")

    def __init__(self, statement: Executable, *, postgresql: Executable | None = None) -> None:
        """``postgresql``: that dialect's spelling when it differs (``ON CONFLICT`` inserts
        are built per dialect in SQLAlchemy)."""
        self.statement = statement
        self._postgresql = postgresql
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, conn: AsyncConnection) -> Executable:
        if self._postgresql is not None and conn.dialect.name == "postgresql":
            return self._postgresql
        return self.statement

    def _sqlite_text(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            assert isinstance(self.statement, ClauseElement)
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if "POSTCOMPILE" in compiled.string:
                raise TypeError("expanding IN parameters cannot be prepared; use a plain statement")
            found = _Compiled(
                compiled.string,
                tuple(compiled.positiontup or ()),
                {name: bind.effective_value for name, bind in compiled.binds.items()},
            )
            self._compiled[dialect.name] = found
        return found

    def _run_sqlite(
        self, raw: sqlite3.Connection, dialect: Dialect, params: Mapping[str, Any]
    ) -> sqlite3.Cursor:
        text = self._sqlite_text(dialect)
        return _as_sqlalchemy_error(raw.execute, text.sql, text.values(params))

    async def all(self, conn: AsyncConnection, params: Mapping[str, Any]) -> list[Row]:
        raw = raw_sqlite(conn)
        if raw is not None:
            return self._run_sqlite(raw, conn.dialect, params).fetchall()
        return [tuple(r) for r in await conn.execute(self._for(conn), dict(params))]

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Row | None:
        raw = raw_sqlite(conn)
        if raw is not None:
            row: Row | None = self._run_sqlite(raw, conn.dialect, params).fetchone()
            return row
        found = (await conn.execute(self._for(conn), dict(params))).first()
        return tuple(found) if found is not None else None

    async def rowcount(self, conn: AsyncConnection, params: Mapping[str, Any]) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE without RETURNING."""
        raw = raw_sqlite(conn)
        if raw is not None:
            return int(self._run_sqlite(raw, conn.dialect, params).rowcount)
        result = await conn.execute(self._for(conn), dict(params))
        return int(result.rowcount)

    async def many(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per parameter set (``executemany``); no result."""
        if not rows:
            return
        raw = raw_sqlite(conn)
        if raw is not None:
            text = self._sqlite_text(conn.dialect)
            _as_sqlalchemy_error(raw.executemany, text.sql, [text.values(row) for row in rows])
            return
        await conn.execute(self._for(conn), [dict(r) for r in rows])
