"""``Database.quick_read`` on PostgreSQL: a checkout without the pre-ping's round trip,
and a read run once more when its connection turns out dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.database import Database
from tests.support import POSTGRES_ONLY, migrated_database

pytestmark = [pytest.mark.postgres, POSTGRES_ONLY]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated_database(database_url, pg_pool_size=2) as database:
        yield database


def log_queries(db: Database) -> list[str]:
    """Queries asyncpg runs itself on the pool's connections (the pre-ping's ``;``; not
    the statements SQLAlchemy prepares)."""
    queries: list[str] = []
    logged: set[int] = set()

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        raw = dbapi_connection.driver_connection
        if id(raw) not in logged:
            logged.add(id(raw))
            raw.add_query_logger(lambda record: queries.append(record.query))

    event.listen(db.engine.sync_engine, "checkout", on_checkout)
    return queries


async def backend_pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_quick_read_costs_no_ping_where_a_read_costs_one(db: Database) -> None:
    queries = log_queries(db)
    async with db.read() as conn:  # the pool's connection, made (and logged) here
        await backend_pid(conn)
    queries.clear()
    assert await db.quick_read(backend_pid) > 0
    assert ";" not in queries
    async with db.read() as conn:
        await backend_pid(conn)
    assert queries == [";"]


async def test_a_backend_that_ended_while_pooled_is_not_handed_out(
    db: Database, pg_admin: asyncpg.Connection
) -> None:
    """asyncpg has seen the backend close (the first read below waits for that), so the
    checkout finds it without a round trip and connects afresh."""
    first = await db.quick_read(backend_pid)
    await pg_admin.fetchval("SELECT pg_terminate_backend($1)", first)
    async with db.read() as conn:  # pre-pinged: waits until the backend is gone
        await backend_pid(conn)
    reads: list[int] = []

    async def read(conn: AsyncConnection) -> int:
        pid = await backend_pid(conn)
        reads.append(pid)
        return pid

    assert await db.quick_read(read) != first
    assert len(reads) == 1


async def test_a_read_whose_backend_drops_under_it_runs_once_more(
    db: Database, pg_admin: asyncpg.Connection
) -> None:
    pids: list[int] = []

    async def read(conn: AsyncConnection) -> int:
        pid = await backend_pid(conn)
        pids.append(pid)
        if len(pids) == 1:
            await pg_admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            await pg_admin.fetchval(  # the backend has exited, whatever asyncpg has seen
                "SELECT count(*) FROM (SELECT pg_sleep(0.01)) s"
                " WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                pid,
            )
        return int((await conn.execute(text("SELECT 42"))).scalar_one())

    assert await db.quick_read(read) == 42
    assert len(pids) == 2
    assert pids[0] != pids[1]


async def test_an_error_that_is_not_a_dropped_connection_is_not_retried(db: Database) -> None:
    calls: list[int] = []

    async def read(conn: AsyncConnection) -> None:
        calls.append(1)
        await conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(Exception, match="no_such_table"):
        await db.quick_read(read)
    assert calls == [1]
