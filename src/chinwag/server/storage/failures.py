"""Which storage failures are the database's trouble, not the request's: answered 503.

A request that failed because PostgreSQL dropped its backend (``pg_terminate_backend``, a
restart, a failover), refused a connection, ran out of connection slots, or picked it as a
deadlock or serialization victim did nothing wrong: the same request can succeed a moment
later. Those are answered ``503 service_unavailable`` with ``Retry-After`` on REST and the
same error in a WebSocket response, and the SDK retries them. Anything else from the
database is a bug and stays a logged 500.

Nothing acknowledged can be lost this way: a transaction whose connection dropped before
``COMMIT`` returned was either rolled back by PostgreSQL or committed, and a retried send
with the same message id is answered from the stored row (``created: false``).

Pure classification (no driver imports), so it holds for SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
import sys

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from chinwag.core.errors import ServiceUnavailable

__all__ = [
    "RETRY_AFTER",
    "TRANSIENT_SQLSTATES",
    "discard_dropped_connections",
    "is_dropped",
    "is_storage_unavailable",
    "is_transient",
    "log_failure",
    "storage_unavailable",
]

RETRY_AFTER = 1
"""Seconds a client waits before retrying (``Retry-After`` on REST, ``data.retry_after``)."""

TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown: pg_terminate_backend, a fast shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or shutting down
    }
)
_CONNECTION_CLASS = "08"
"""connection_exception and its subclasses (08003 connection_does_not_exist, 08006 ...)."""

_DROPPED_STATES = frozenset({"57P01", "57P02", "57P03"})
_DROPPED_TEXTS = (
    "connection is closed",  # asyncpg, on a connection the server had already dropped
    "connection was closed",
    "another operation is in progress",  # asyncpg left mid-protocol by a dropped backend
    "cannot switch to state",  # the same, met as a statement starts
    "protocol state",
)
_TRANSIENT_TEXTS = (
    "database is locked",  # SQLite: another process held the write lock past busy_timeout
    "deadlock",
    *_DROPPED_TEXTS,
)


def _sqlstates(exc: BaseException) -> set[str]:
    """The SQLSTATEs of ``exc`` and the errors it was raised from (asyncpg chains a
    ``ConnectionDoesNotExistError`` onto the server's ``AdminShutdownError``)."""
    found: set[str] = set()
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str):
            found.add(state)
        seen = seen.__cause__ or seen.__context__
    return found


def is_dropped(error: BaseException) -> bool:
    """Whether ``error`` (the driver's) says the connection itself is gone or unusable
    (also asked by ``prepared_pg.py``, whose statements bypass the ``handle_error`` hook)."""
    states = _sqlstates(error)
    if states & _DROPPED_STATES or any(s.startswith(_CONNECTION_CLASS) for s in states):
        return True
    text = str(error).lower()
    return any(sign in text for sign in _DROPPED_TEXTS)


def discard_dropped_connections(engine: AsyncEngine) -> None:
    """Tell SQLAlchemy that a dropped backend is a disconnect (its public ``handle_error``
    hook), so the connection is discarded and the pool's older ones are replaced, and a
    pre-ping that meets one reconnects instead of failing the request.

    Without it, SQLAlchemy's asyncpg dialect counts only a connection asyncpg already
    knows is closed; one left mid-protocol by ``pg_terminate_backend`` ("another operation
    is in progress") went back to the pool and failed every request that drew it."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _disconnect(context: ExceptionContext) -> None:
        if is_dropped(context.original_exception):
            context.is_disconnect = True


def is_transient(exc: DBAPIError) -> bool:
    """A failure that a retry of the same request can cure (the client gets 503)."""
    if exc.connection_invalidated:
        return True  # SQLAlchemy saw the connection close under the statement
    states = _sqlstates(exc.orig) if exc.orig is not None else set()
    if states & TRANSIENT_SQLSTATES or any(s.startswith(_CONNECTION_CLASS) for s in states):
        return True
    text = str(exc.orig).lower()
    return any(sign in text for sign in _TRANSIENT_TEXTS)


def is_storage_unavailable(exc: BaseException) -> bool:
    """Any failure of the database itself, not of the request: a transient driver error,
    a full pool (waited ``pool_timeout``), a refused or reset connection attempt, or
    asyncpg's own error for a dropped connection (both raised by the driver before
    SQLAlchemy could wrap them: SQLAlchemy's set-up of a new connection runs statements
    that a backend terminated just after it started fails)."""
    if isinstance(exc, DBAPIError):
        return is_transient(exc)
    if isinstance(exc, PoolTimeout | ConnectionError):
        return True
    return type(exc).__module__.startswith("asyncpg.") and is_dropped(exc)


def storage_unavailable() -> ServiceUnavailable:
    """The answer to a request the database failed: the same on REST and WebSocket."""
    return ServiceUnavailable(
        "The database was busy or unreachable; retry the request.",
        data={"retry_after": RETRY_AFTER},
    )


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled: a database outage as one warning line (expected,
    and the caller retries or the client does), anything else with its traceback."""
    failure = sys.exc_info()[1]
    if failure is not None and is_storage_unavailable(failure):
        logger.warning(f"{message} (database unavailable: %s)", *args, type(failure).__name__)
    else:
        logger.exception(message, *args)
