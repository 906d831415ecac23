"""Prepared statements on PostgreSQL run on the asyncpg connection inside SQLAlchemy's
transaction: they begin it through SQLAlchemy, join it afterwards, and fail as SQLAlchemy
would (``storage/prepared_pg.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Numeric, bindparam, cast, insert, literal, select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError

from chinwag.server.storage.database import Database
from chinwag.server.storage.engines.postgres import ADAPTED_ERRORS, PingOnceDialect, adapted_error
from chinwag.server.storage.failures import is_storage_unavailable
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.prepared_pg import compile_for, raw_asyncpg
from chinwag.server.storage.schema import server_secrets
from tests.support import migrated_database, pg_connect, postgres_database

pytestmark = pytest.mark.postgres

_INSERT = Prepared(insert(server_secrets).values(name=bindparam("name"), value=bindparam("value")))
_GET = Prepared(select(server_secrets.c.value).where(server_secrets.c.name == bindparam("name")))
_COUNT = Prepared(select(text("count(*)")).select_from(server_secrets))


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_database() as url, migrated_database(url) as database:
        yield database


async def _stored(db: Database, name: str) -> bytes | None:
    async with db.read() as conn:
        row = await _GET.first(conn, {"name": name})
    return None if row is None else bytes(row[0])


async def test_the_first_statement_begins_the_transaction_through_sqlalchemy(
    db: Database,
) -> None:
    """SQLAlchemy's asyncpg adapter sends BEGIN lazily: before any statement asyncpg has
    no transaction, so the first Prepared one must go through SQLAlchemy (else it would
    autocommit on its own); every later one runs on asyncpg inside that transaction."""

    async def insert_then_fail() -> None:
        async with db.transaction() as tx:
            assert raw_asyncpg(tx.conn) is None  # no BEGIN sent yet
            await _INSERT.rowcount(tx.conn, {"name": "first", "value": b"1"})
            assert raw_asyncpg(tx.conn) is not None  # BEGIN sent: the fast path applies
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await _stored(db, "first") is None


async def test_a_read_runs_without_begin_or_rollback_and_on_the_fast_path(db: Database) -> None:
    """``Database.read`` on PostgreSQL is autocommit: its statements cost no ``BEGIN`` and
    no ``ROLLBACK`` round trips, and take the asyncpg path from the first one."""
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "seen", "value": b"1"})
    sent: list[str] = []

    def log(record: asyncpg.connection.LoggedQuery) -> None:
        sent.append(str(record.query))

    async with db.read() as conn:
        raw = raw_asyncpg(conn)
        assert raw is not None
        raw.add_query_logger(log)
        assert await _GET.first(conn, {"name": "seen"}) == (b"1",)
    async with db.read() as conn:  # the pool's one idle connection again
        assert raw_asyncpg(conn) is raw
        assert raw is not None  # for mypy: `is` against an Optional un-narrowed it
        assert await _COUNT.first(conn, {}) == (1,)
        assert not raw.is_in_transaction()
    raw.remove_query_logger(log)
    assert [q for q in sent if q.upper().startswith(("BEGIN", "ROLLBACK"))] == []
    assert sum("server_secrets" in q for q in sent) == 2  # both went to asyncpg directly


async def test_a_statement_on_asyncpg_rolls_back_with_the_transaction(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.transaction() as tx:
            assert await _COUNT.first(tx.conn, {}) == (0,)  # begins the transaction
            raw = raw_asyncpg(tx.conn)
            assert raw is not None
            assert raw.is_in_transaction()
            assert await _INSERT.rowcount(tx.conn, {"name": "gone", "value": b"1"}) == 1
            assert await _COUNT.first(tx.conn, {}) == (1,)  # seen inside the transaction
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await _stored(db, "gone") is None


async def test_a_statement_on_asyncpg_commits_with_the_transaction(db: Database) -> None:
    async with db.transaction() as tx:
        await _COUNT.first(tx.conn, {})
        assert raw_asyncpg(tx.conn) is not None
        await _INSERT.many(tx.conn, [{"name": f"m{i}", "value": b"v"} for i in range(3)])
        assert await _INSERT.rowcount(tx.conn, {"name": "kept", "value": b"k"}) == 1
    assert await _stored(db, "kept") == b"k"
    assert await _stored(db, "m2") == b"v"


async def test_a_unique_violation_on_asyncpg_is_sqlalchemys_integrity_error(db: Database) -> None:
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "dup", "value": b"1"})

    async def insert_again() -> None:
        async with db.transaction() as tx:
            await _COUNT.first(tx.conn, {})
            assert raw_asyncpg(tx.conn) is not None
            await _INSERT.rowcount(tx.conn, {"name": "dup", "value": b"2"})

    with pytest.raises(IntegrityError) as caught:
        await insert_again()
    assert caught.value.orig is not None
    assert getattr(caught.value.orig, "sqlstate", None) == "23505"
    assert isinstance(caught.value.orig.__cause__, asyncpg.UniqueViolationError)
    assert "'2'" not in str(caught.value)
    assert "b'2'" not in str(caught.value)
    assert not is_storage_unavailable(caught.value)
    assert await _stored(db, "dup") == b"1"  # and the pooled connection still works


async def test_a_dropped_backend_on_asyncpg_is_a_503_and_the_pool_recovers(
    db: Database,
) -> None:
    admin = await pg_connect(db.url)
    try:

        async def terminated_mid_transaction() -> None:
            async with db.transaction() as tx:
                await _COUNT.first(tx.conn, {})
                raw = raw_asyncpg(tx.conn)
                assert raw is not None
                await admin.execute("SELECT pg_terminate_backend($1)", raw.get_server_pid())
                await _INSERT.rowcount(tx.conn, {"name": "lost", "value": b"1"})

        with pytest.raises(DBAPIError) as caught:
            await terminated_mid_transaction()
        assert is_storage_unavailable(caught.value)
        assert caught.value.connection_invalidated
    finally:
        await admin.close()
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "after", "value": b"1"})
    assert await _stored(db, "lost") is None
    assert await _stored(db, "after") == b"1"


def _asyncpg_dialect() -> Dialect:
    # SQLAlchemy leaves PGDialect_asyncpg.__init__ unannotated.
    return asyncpg_dialect()  # type: ignore[no-untyped-call]


def test_parameters_are_passed_in_dollar_order() -> None:
    """``positiontup`` names the parameters in ``$n`` order, a name used twice once
    (SQLAlchemy 2.1's numeric_dollar compiler; the ``<2.2`` pin holds it)."""
    statement = select(server_secrets.c.name).where(
        server_secrets.c.value == bindparam("b"),
        server_secrets.c.name == bindparam("a"),
        server_secrets.c.value != bindparam("b"),
    )
    compiled = compile_for(statement, _asyncpg_dialect())
    assert compiled is not None
    assert compiled.names == ("b", "a")
    assert "$1::BYTEA" in compiled.sql
    assert "$2::VARCHAR" in compiled.sql
    assert compiled.args({"a": "x", "b": b"y"}) == [b"y", "x"]


def test_statements_whose_results_need_converting_run_through_sqlalchemy() -> None:
    assert compile_for(select(cast(literal(1), Numeric)), _asyncpg_dialect()) is None
    expanding = select(server_secrets.c.name).where(
        server_secrets.c.name.in_(bindparam("names", expanding=True))
    )
    assert compile_for(expanding, _asyncpg_dialect()) is None


async def test_a_pooled_connection_whose_backend_dropped_is_replaced_at_checkout(
    db: Database,
) -> None:
    """The one-round-trip pre-ping (``PingOnceDialect``) still finds a dead pooled
    connection and the pool reconnects instead of failing the request."""
    assert isinstance(db.engine.dialect, PingOnceDialect)
    async with db.read() as conn:
        await _COUNT.first(conn, {})
        raw = raw_asyncpg(conn)
        assert raw is not None
        pid = raw.get_server_pid()
    admin = await pg_connect(db.url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "after-ping", "value": b"1"})
    assert await _stored(db, "after-ping") == b"1"


def test_every_asyncpg_error_has_the_adapters_class(db: Database) -> None:
    """``adapted_error`` names SQLAlchemy's adapter classes by their public names; a
    SQLAlchemy upgrade that renames one fails here, not in a request."""
    for ours, theirs in ADAPTED_ERRORS:
        assert isinstance(getattr(asyncpg.exceptions, ours), type)
        assert issubclass(getattr(db.engine.dialect.loaded_dbapi, theirs), Exception)
    unique = asyncpg.UniqueViolationError("duplicate key")
    adapted = adapted_error(db.engine.dialect, unique)
    assert type(adapted).__name__ == "UniqueViolationError"
    assert isinstance(adapted, db.engine.dialect.loaded_dbapi.IntegrityError)
    assert adapted.__cause__ is unique
    assert adapted_error(db.engine.dialect, OSError("reset")).__class__ is OSError
