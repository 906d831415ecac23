"""The error envelope at the edge: transient database failures are 503, not 500."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from chinwag.server.api.errors import is_transient


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"pg error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "55P03", "53300"])
def test_postgres_retryable_states_are_transient(sqlstate: str) -> None:
    assert is_transient(DBAPIError("stmt", None, _PgError(sqlstate)))


def test_other_postgres_errors_are_not_transient() -> None:
    assert not is_transient(DBAPIError("stmt", None, _PgError("23505")))


def test_sqlite_lock_timeout_is_transient() -> None:
    import sqlite3

    locked = OperationalError("stmt", None, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)


@pytest.mark.postgres
async def test_real_postgres_deadlock_is_classified_transient() -> None:
    """Provoke a genuine deadlock between two connections and classify what asyncpg raises."""
    import asyncio

    from tests.support import pg_connect, postgres_database

    async with postgres_database() as url:
        setup = await pg_connect(url)
        await setup.execute("CREATE TABLE t (id int primary key, v int)")
        await setup.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
        await setup.close()
        a, b = await pg_connect(url), await pg_connect(url)
        try:
            ta, tb = a.transaction(), b.transaction()
            await ta.start()
            await tb.start()
            await a.execute("UPDATE t SET v = 1 WHERE id = 1")
            await b.execute("UPDATE t SET v = 1 WHERE id = 2")
            results = await asyncio.gather(
                a.execute("UPDATE t SET v = 2 WHERE id = 2"),
                b.execute("UPDATE t SET v = 2 WHERE id = 1"),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1
            assert isinstance(errors[0], asyncpg.exceptions.DeadlockDetectedError)
            assert is_transient(DBAPIError("stmt", None, errors[0]))
        finally:
            await a.close()
            await b.close()
