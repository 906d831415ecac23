"""PostgreSQL: the pool, its dialect, row locks and the migration lock.

A real pool (several transactions in parallel, each with its own connection). Where the
order of writes matters (a user's stream head, a conversation's position), rows are locked
with ``SELECT … FOR UPDATE`` in primary-key order so concurrent writers cannot deadlock;
SQLite needs no such clause, its single writer serialises everything.

The dialect is SQLAlchemy's asyncpg one with a cheaper pool pre-ping
(:class:`PingOnceDialect`, registered as ``postgresql+chinwag_asyncpg`` with SQLAlchemy's
public dialect registry and chosen for ``postgresql+asyncpg://`` URLs), and
:func:`adapted_error` turns asyncpg's exceptions into the ones SQLAlchemy's adapter raises,
for code that calls asyncpg itself (the ping, ``prepared_pg.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import event, make_url, text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Select
from sqlalchemy.util import await_

from chinwag.server.storage.failures import discard_dropped_connections

__all__ = [
    "ADAPTED_ERRORS",
    "ARRAY_TYPES",
    "DRIVER_NAME",
    "POOL_SIZE",
    "PingOnceDialect",
    "adapted_error",
    "create_engine",
    "insert",
    "lock_for_migrations",
    "locked",
    "without_ping_round_trip",
]

S = TypeVar("S", bound=Select)  # type: ignore[type-arg]

_MIGRATION_LOCK = 7411
"""``pg_advisory_xact_lock`` key: nodes starting together migrate one after another."""


ADAPTED_ERRORS = (
    ("IntegrityConstraintViolationError", "IntegrityError"),
    ("PostgresError", "Error"),
    ("SyntaxOrAccessError", "ProgrammingError"),
    ("InterfaceError", "InterfaceError"),
    ("InvalidCachedStatementError", "InvalidCachedStatementError"),
    ("InternalServerError", "InternalServerError"),
    ("RestrictViolationError", "RestrictViolationError"),
    ("NotNullViolationError", "NotNullViolationError"),
    ("ForeignKeyViolationError", "ForeignKeyViolationError"),
    ("UniqueViolationError", "UniqueViolationError"),
    ("CheckViolationError", "CheckViolationError"),
    ("ExclusionViolationError", "ExclusionViolationError"),
    ("InternalClientError", "InternalClientError"),
)
"""asyncpg's exception classes and the adapter's DBAPI classes SQLAlchemy 2.1 turns them
into (the nearest class in the error's MRO wins), by their public names."""


def adapted_error(dialect: Dialect, error: Exception) -> Exception:
    """The adapter's DBAPI exception for asyncpg's ``error`` (``error`` itself when it is
    not asyncpg's), raised from it as the adapter raises it."""
    import asyncpg

    names = {getattr(asyncpg.exceptions, ours): theirs for ours, theirs in ADAPTED_ERRORS}
    for cls in type(error).__mro__:
        name = names.get(cls)
        if name is not None:
            translated: Exception = getattr(dialect.loaded_dbapi, name)(
                error.args[0] if error.args else str(error), error
            )
            translated.__cause__ = error
            return translated
    return error


_TRUST_POOLED: ContextVar[bool] = ContextVar("chinwag_trust_pooled", default=False)


@contextmanager
def without_ping_round_trip() -> Iterator[None]:
    """Checkouts in this block skip the pre-ping's round trip (:class:`PingOnceDialect`):
    only for work that is safe to run again when its connection turns out dropped
    (``Database.quick_read``)."""
    token = _TRUST_POOLED.set(True)
    try:
        yield
    finally:
        _TRUST_POOLED.reset(token)


class PingOnceDialect(PGDialect_asyncpg):
    """SQLAlchemy's asyncpg dialect with a pool pre-ping of one round trip.

    Why: every checkout pre-pings (a backend dropped while pooled costs a reconnect, not a
    request), and SQLAlchemy's asyncpg ping wraps its ``;`` in ``BEGIN``/``ROLLBACK`` for
    pgbouncer's transaction mode: three round trips, more than a whole read. chinwag
    connects to PostgreSQL directly, so the ``;`` alone answers the question. A failure is
    raised as the adapter's DBAPI exception, which the pool's ping handling expects.

    Inside :func:`without_ping_round_trip` even the ``;`` is skipped: the checkout only asks
    asyncpg whether it has seen the backend close (``is_closed``), which it has for any
    backend that ended before the loop's last turn. The round trip cost a read more of
    chinwag's CPU (145 of 200 µs per checkout) than the read's own statement did."""

    supports_statement_cache = True

    def do_ping(self, dbapi_connection: Any) -> bool:
        raw = dbapi_connection.driver_connection
        if _TRUST_POOLED.get():
            # A backend that ended closed its socket, and asyncpg marks the connection
            # closed on the loop's next turn: no round trip for what the caller can redo.
            return not raw.is_closed()
        try:
            await_(raw.fetchrow(";"))
        except Exception as error:
            raise adapted_error(self, error) from error
        return True


DRIVER_NAME = "postgresql+chinwag_asyncpg"
registry.register("postgresql.chinwag_asyncpg", __name__, "PingOnceDialect")


POOL_SIZE = 20
"""Connections a process keeps open by default (``Settings.pg_pool_size``)."""


ARRAY_TYPES = "SELECT CAST(NULL AS BIGINT[]), CAST(NULL AS VARCHAR[])"
"""A statement whose results are each array type chinwag's statements bind (``spans.py``):
preparing it has asyncpg learn them (:func:`_learn_array_types`)."""


def _learn_array_types(dbapi_connection: Any, _record: Any) -> None:
    """Pool ``connect`` hook: have asyncpg learn the array types on a new connection.

    Why: asyncpg knows only a few array types by heart and looks the others up on each
    connection, the first time a statement binds or returns one: three more statements
    (``jit`` off, the ``pg_type`` lookup, ``jit`` back), 25-50 ms here, paid by the first
    send on every new connection (its merge binds ``BIGINT[]`` and ``VARCHAR[]``).
    Preparing :data:`ARRAY_TYPES` moves that cost to the connect.

    SQLAlchemy has asyncpg forget what it learnt on a connection older than the last DDL
    it ran (a migration), so the write lanes, whose connections may be that old, run
    :data:`ARRAY_TYPES` again through SQLAlchemy when they connect (``pg_batching.py``),
    before the node says it is ready (``Database.warm``).

    The statement cannot fail for any reason but the connection's: a backend ended just
    after it started (``pg_terminate_backend``, a restart) fails it with whatever state
    asyncpg was left in, raised here outside SQLAlchemy's error handling, so it is raised
    as the failed connection attempt it is (503 ``service_unavailable``, not a 500)."""
    try:
        dbapi_connection.run_async(lambda raw: raw.fetchrow(ARRAY_TYPES))
    except Exception as error:
        raise ConnectionResetError(
            f"PostgreSQL dropped a new connection ({type(error).__name__}: {error})"
        ) from error


def create_engine(url: str, *, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """``hide_parameters`` keeps message bodies, token hashes and secrets out of database
    errors' text, which gets logged. ``pool_pre_ping`` and the ``handle_error`` hook of
    :func:`~chinwag.server.storage.failures.discard_dropped_connections`: a dropped backend
    costs one 503, not every request on that pooled connection. No overflow: connections
    opened for a burst and closed after it were, under steady load, opened and closed
    continuously (a backend start and asyncpg's type introspection each), and with two
    nodes that churn took more of PostgreSQL's CPU than the queries did."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+asyncpg"):
        parsed = parsed.set(drivername=DRIVER_NAME)
    engine = create_async_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        hide_parameters=True,
    )
    discard_dropped_connections(engine)
    event.listen(engine.sync_engine, "connect", _learn_array_types)
    return engine


def locked(query: S) -> S:
    """``query`` with ``FOR NO KEY UPDATE`` (the caller orders it by primary key): not
    ``FOR UPDATE``, which waits on the key-share locks that inserting rows referencing these
    rows takes, and deadlocked concurrent conversation creations (``storage/events.py``)."""
    return query.with_for_update(key_share=True)


async def lock_for_migrations(conn: AsyncConnection) -> None:
    await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))


insert = pg_insert
