"""Prepared statements on PostgreSQL: run on the asyncpg connection, in SQLAlchemy's transaction.

Why: on PostgreSQL each statement sent through SQLAlchemy's ``AsyncConnection`` cost
chinwag's process more Python than the database spent answering it (cache key, parameter
and result processing, the adapted cursor, the greenlet bridge), and a send runs about ten;
the server process, not PostgreSQL, was what saturated (``bench/README.md``). Here a
statement is compiled once, with SQLAlchemy's public API and the engine's own dialect, to
the exact text SQLAlchemy would send (``$n`` placeholders, bind casts included) and the
names of its parameters in ``$n`` order (``SQLCompiler.positiontup``); it then runs with
asyncpg's ``fetch``/``fetchrow``/``execute``/``executemany`` (asyncpg's statement cache
prepares it once per connection) on the connection under the surrounding SQLAlchemy
connection (``driver_connection``).

**Joining the transaction.** SQLAlchemy's asyncpg adapter issues ``BEGIN`` lazily, on the
first statement it runs. So the fast path is taken only while asyncpg reports a transaction
open (``is_in_transaction()``); before that, the statement goes through SQLAlchemy, which
begins the transaction that every later statement then joins, and which commits or rolls
back through SQLAlchemy as before. A connection in autocommit (``Database.read`` on
PostgreSQL) has no transaction to join: its statements take the fast path at once.

**Errors** are wrapped as SQLAlchemy's adapter and ``Connection`` wrap them: the asyncpg
exception becomes the adapter's DBAPI exception of the same class (a unique violation an
``IntegrityError``, with its ``sqlstate``), raised from it, inside
``sqlalchemy.exc.DBAPIError.instance``. A dropped backend (the connection closed, or what
``failures.py`` counts as dropped) invalidates the SQLAlchemy connection, so the pool
discards it and the request is answered 503 (``failures.py``), as is a cancellation
mid-statement, which leaves asyncpg mid-protocol. One difference: SQLAlchemy also marks the
pool's older connections stale on a disconnect; here the pool's pre-ping finds them instead.

**Types.** Parameters pass through the dialect's bind processors (booleans are coerced);
results come back untouched, so a statement whose result columns need processing on this
dialect (``Numeric`` as ``Decimal``, ranges) is refused the fast path and runs through
SQLAlchemy. Floats, integers, text, bytes and booleans are native in asyncpg.

Relies on two behaviours of SQLAlchemy 2.1 that are public names but not documented
promises (held by the ``<2.2`` pin and ``tests/server/test_storage_prepared.py``): the
adapter begins lazily, and ``positiontup`` lists the parameters in ``$n`` order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.sqltypes import Float
from sqlalchemy.types import TypeEngine

from chinwag.server.storage.engines.postgres import adapted_error
from chinwag.server.storage.failures import is_dropped

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PgCompiled", "compile_for", "fail", "raw_asyncpg"]

Processor = Callable[[Any], Any]


def raw_asyncpg(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under ``conn`` once its transaction has begun (see the module
    docstring) or when it has none (autocommit: ``Database.read``), through SQLAlchemy's
    public accessors; None otherwise."""
    if conn.dialect.driver != "asyncpg":
        return None
    sync = conn.sync_connection
    if sync is None:
        return None
    raw: asyncpg.Connection = sync.connection.driver_connection
    if raw.is_in_transaction() or sync.get_execution_options().get("isolation_level") == (
        "AUTOCOMMIT"
    ):
        return raw
    return None


@dataclass(frozen=True, slots=True)
class PgCompiled:
    """A statement's text for asyncpg and how to turn named parameters into ``$n`` args."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    """Values of the statement's own literals (``stream_head + 1`` binds its ``1``)."""
    processors: tuple[tuple[int, Processor], ...]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.defaults, **params} if self.defaults else params
        try:
            args = [values[name] for name in self.names]
        except KeyError as missing:
            raise InvalidRequestError(
                f"A value is required for bind parameter {missing.args[0]!r}"
            ) from None
        for index, process in self.processors:
            args[index] = process(args[index])
        return args


def _needs_result_processing(kind: TypeEngine[Any], dialect: Dialect) -> bool:
    impl = kind.dialect_impl(dialect)
    if isinstance(impl, Float) and not impl.asdecimal:
        return False  # asyncpg returns double precision as float (the processor asks the OID)
    try:
        return impl.result_processor(dialect, None) is not None
    except Exception:  # the dialect needs the column's OID to decide: assume it converts
        return True


def compile_for(statement: ClauseElement, dialect: Dialect) -> PgCompiled | None:
    """``statement`` compiled for asyncpg; None when it must run through SQLAlchemy
    (expanding ``IN`` parameters, or result columns that need converting)."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if "POSTCOMPILE" in compiled.string or (compiled.positiontup is None and compiled.binds):
        return None
    columns = getattr(statement, "exported_columns", ())
    if any(_needs_result_processing(column.type, dialect) for column in columns):
        return None
    names = tuple(compiled.positiontup or ())
    required = {name for name, bind in compiled.binds.items() if bind.required}
    defaults = {k: v for k, v in compiled.params.items() if k not in required}
    processors = []
    for index, name in enumerate(names):
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((index, process))
    return PgCompiled(compiled.string, names, defaults, tuple(processors))


async def fail(
    conn: AsyncConnection,
    raw: asyncpg.Connection,
    sql: str,
    args: Sequence[Any],
    error: BaseException,
    *,
    many: bool = False,
) -> NoReturn:
    """Raise ``error`` (asyncpg's, met running ``sql``) as SQLAlchemy would have: wrapped
    in its DBAPI exception, the connection invalidated if it dropped or was cancelled."""
    if not isinstance(error, Exception):  # cancelled mid-statement: asyncpg is mid-protocol
        await _invalidate(conn, None)
        raise error
    translated = adapted_error(conn.dialect, error)
    dropped = raw.is_closed() or is_dropped(translated)
    if dropped:
        await _invalidate(conn, translated)
    if translated is error:  # not a driver error: SQLAlchemy lets it through unwrapped
        raise error
    raise DBAPIError.instance(
        sql,
        args,
        translated,
        conn.dialect.loaded_dbapi.Error,
        hide_parameters=conn.sync_engine.hide_parameters,
        connection_invalidated=dropped,
        dialect=conn.dialect,
        ismulti=many,
    ) from translated


async def _invalidate(conn: AsyncConnection, error: BaseException | None) -> None:
    with contextlib.suppress(Exception):
        await conn.invalidate(error)
