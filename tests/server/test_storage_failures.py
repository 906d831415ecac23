"""Which storage failures are answered 503: the classification, without a database."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from chinwag.server.storage.failures import is_storage_unavailable, is_transient


class _PgError(Exception):
    def __init__(self, sqlstate: str, text: str = "pg error") -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["57P01", "57P02", "57P03", "08003", "08006"])
def test_a_dropped_or_refused_backend_is_transient(sqlstate: str) -> None:
    assert is_transient(DBAPIError("stmt", None, _PgError(sqlstate)))


def test_the_sqlstate_of_a_chained_cause_counts() -> None:
    """asyncpg raises ConnectionDoesNotExistError from the server's AdminShutdownError."""
    outer = Exception("connection was interrupted")
    outer.__cause__ = _PgError("57P01")
    assert is_transient(DBAPIError("stmt", None, outer))


def test_an_invalidated_connection_is_transient() -> None:
    failure = DBAPIError("stmt", None, Exception("boom"), connection_invalidated=True)
    assert is_transient(failure)


def test_a_constraint_violation_is_not_transient() -> None:
    assert not is_transient(DBAPIError("stmt", None, _PgError("23505")))
    assert not is_storage_unavailable(DBAPIError("stmt", None, _PgError("23503")))


def test_a_full_pool_and_a_refused_connection_are_unavailable() -> None:
    assert is_storage_unavailable(PoolTimeout("QueuePool limit reached"))
    assert is_storage_unavailable(ConnectionRefusedError(111, "refused"))
    assert not is_storage_unavailable(ValueError("a bug"))


def test_asyncpgs_own_error_for_a_connection_left_mid_protocol_is_unavailable() -> None:
    """Raised unwrapped by SQLAlchemy's set-up of a new connection (its type codecs) when
    the backend was terminated just after it started: the connection's fault, not the
    request's. Any other unwrapped asyncpg error stays a bug."""
    from asyncpg.exceptions import InternalClientError

    midway = InternalClientError("cannot switch to state 11; another operation (2) is in progress")
    assert is_storage_unavailable(midway)
    assert not is_storage_unavailable(InternalClientError("a bug in how it was called"))
