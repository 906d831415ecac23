"""Prepared statements behave like SQLAlchemy's own: same transaction, same errors, same rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from chinwag.server.storage.database import Database
from chinwag.server.storage.prepared import Prepared, raw_sqlite
from chinwag.server.storage.schema import server_secrets
from tests.support import migrated_database

_INSERT = Prepared(insert(server_secrets).values(name=bindparam("name"), value=bindparam("value")))
_GET = Prepared(
    select(server_secrets.c.name, server_secrets.c.value).where(
        server_secrets.c.name == bindparam("name")
    )
)
# The statement's own literal ("-x") is a bind SQLAlchemy fills in, not the caller.
_RENAME = Prepared(
    update(server_secrets)
    .where(server_secrets.c.name == bindparam("old"))
    .values(name=server_secrets.c.name + "-x")
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated_database(database_url) as database:
        yield database


async def test_sqlite_runs_on_the_raw_connection(db: Database) -> None:
    async with db.read() as conn:
        assert (raw_sqlite(conn) is not None) == (not db.is_postgres)


async def test_rows_commit_with_the_surrounding_transaction(db: Database) -> None:
    async with db.transaction() as tx:
        assert await _INSERT.rowcount(tx.conn, {"name": "a", "value": b"1"}) == 1
    async with db.read() as conn:
        row = await _GET.first(conn, {"name": "a"})
    assert row is not None
    assert (row[0], bytes(row[1])) == ("a", b"1")


async def test_rows_roll_back_with_the_surrounding_transaction(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.transaction() as tx:
            await _INSERT.rowcount(tx.conn, {"name": "gone", "value": b"1"})
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    async with db.read() as conn:
        assert await _GET.first(conn, {"name": "gone"}) is None


async def test_driver_errors_are_sqlalchemy_errors(db: Database) -> None:
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "dup", "value": b"1"})

    async def insert_again() -> None:
        async with db.transaction() as tx:
            await _INSERT.rowcount(tx.conn, {"name": "dup", "value": b"2"})

    with pytest.raises(IntegrityError):
        await insert_again()
    # The held connection is usable afterwards.
    async with db.read() as conn:
        row = await _GET.first(conn, {"name": "dup"})
    assert row is not None
    assert bytes(row[1]) == b"1"


async def test_literals_in_the_statement_are_bound(db: Database) -> None:
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "b", "value": b"1"})
        assert await _RENAME.rowcount(tx.conn, {"old": "b"}) == 1
    async with db.read() as conn:
        assert await _GET.first(conn, {"name": "b-x"}) is not None


async def test_many_and_all(db: Database) -> None:
    async with db.transaction() as tx:
        await _INSERT.many(tx.conn, [{"name": f"m{i}", "value": b"v"} for i in range(3)])
    every = Prepared(select(server_secrets.c.name).where(server_secrets.c.name.like("m%")))
    async with db.read() as conn:
        assert sorted(r[0] for r in await every.all(conn, {})) == ["m0", "m1", "m2"]


async def test_expanding_in_is_refused_on_sqlite(db: Database) -> None:
    expanding = Prepared(
        select(server_secrets.c.name).where(
            server_secrets.c.name.in_(bindparam("names", expanding=True))
        )
    )
    async with db.read() as conn:
        if db.is_postgres:
            assert await expanding.all(conn, {"names": ["x"]}) == []
        else:
            with pytest.raises(TypeError):
                await expanding.all(conn, {"names": ["x"]})


async def test_a_cancelled_transaction_leaves_nothing_behind(db: Database) -> None:
    """A request cancelled mid-transaction (its client went away) must not leave its
    writes, or a half-open transaction, on the connection the next request uses."""
    inside = asyncio.Event()

    async def stuck() -> None:
        async with db.transaction() as tx:
            await _INSERT.rowcount(tx.conn, {"name": "cancelled", "value": b"1"})
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.transaction() as tx:
        await _INSERT.rowcount(tx.conn, {"name": "after", "value": b"1"})
    async with db.read() as conn:
        assert await _GET.first(conn, {"name": "cancelled"}) is None
        assert await _GET.first(conn, {"name": "after"}) is not None
