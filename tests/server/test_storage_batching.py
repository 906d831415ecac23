"""Group commit (``Database.write``): shared transactions that never cost a job its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pydantic
import pytest
from sqlalchemy import bindparam, insert, select

from chinwag.core.errors import NotFound
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database, Transaction
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import server_secrets
from tests.support import migrated_database

INSERT_SECRET = Prepared(
    insert(server_secrets).values(name=bindparam("name"), value=bindparam("value"))
)
_NAMES = Prepared(select(server_secrets.c.name).where(server_secrets.c.name.like("job-%")))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with migrated_database(f"sqlite+aiosqlite:///{tmp_path / 'batch.db'}") as database:
        yield database


async def job_names(db: Database) -> set[str]:
    async with db.read() as conn:
        return {row[0] for row in await _NAMES.all(conn, {})}


def writer(name: str, seen: list[Transaction]) -> Callable[[Transaction], Awaitable[str]]:
    async def job(tx: Transaction) -> str:
        seen.append(tx)
        await INSERT_SECRET.rowcount(tx.conn, {"name": name, "value": b"v"})
        return name

    return job


async def test_jobs_arriving_together_share_one_transaction(db: Database) -> None:
    seen: list[Transaction] = []
    results = await asyncio.gather(*(db.write(writer(f"job-{i}", seen)) for i in range(10)))
    assert results == [f"job-{i}" for i in range(10)]
    assert len({id(tx) for tx in seen}) == 1
    assert await job_names(db) == {f"job-{i}" for i in range(10)}


async def test_a_refusal_before_writing_fails_only_its_job(db: Database) -> None:
    async def refuse(_tx: Transaction) -> str:
        raise NotFound("no")

    seen: list[Transaction] = []
    outcomes: tuple[object, ...] = await asyncio.gather(
        db.write(writer("job-a", seen)),
        db.write(refuse),
        db.write(writer("job-b", seen)),
        return_exceptions=True,
    )
    assert outcomes[0] == "job-a"
    assert isinstance(outcomes[1], NotFound)
    assert outcomes[2] == "job-b"
    assert len({id(tx) for tx in seen}) == 1
    assert await job_names(db) == {"job-a", "job-b"}


async def test_a_refusal_after_writing_is_rolled_back_and_the_others_kept(db: Database) -> None:
    async def write_then_refuse(tx: Transaction) -> str:
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-refused", "value": b"v"})
        raise NotFound("no")

    seen: list[Transaction] = []
    outcomes: tuple[object, ...] = await asyncio.gather(
        db.write(writer("job-a", seen)),
        db.write(write_then_refuse),
        db.write(writer("job-b", seen)),
        return_exceptions=True,
    )
    assert outcomes[0] == "job-a"
    assert isinstance(outcomes[1], NotFound)
    assert outcomes[2] == "job-b"
    assert await job_names(db) == {"job-a", "job-b"}


async def test_a_failing_job_does_not_take_the_batch_with_it(db: Database) -> None:
    async def broken(tx: Transaction) -> str:
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-a", "value": b"dup"})  # a unique clash
        return "never"

    seen: list[Transaction] = []
    outcomes: tuple[object, ...] = await asyncio.gather(
        db.write(writer("job-a", seen)),
        db.write(broken),
        db.write(writer("job-b", seen)),
        return_exceptions=True,
    )
    assert outcomes[0] == "job-a"
    assert isinstance(outcomes[1], Exception)
    assert not isinstance(outcomes[1], NotFound)
    assert outcomes[2] == "job-b"
    assert await job_names(db) == {"job-a", "job-b"}


async def test_after_commit_runs_only_once_committed(db: Database) -> None:
    rang: list[str] = []

    def announcing(name: str) -> Callable[[Transaction], Awaitable[str]]:
        async def job(tx: Transaction) -> str:
            await INSERT_SECRET.rowcount(tx.conn, {"name": name, "value": b"v"})
            tx.after_commit(lambda: rang.append(name))
            assert rang == []  # nothing is announced before the shared commit
            return name

        return job

    await asyncio.gather(*(db.write(announcing(f"job-{i}")) for i in range(3)))
    assert rang == ["job-0", "job-1", "job-2"]


async def test_a_cancelled_caller_does_not_cancel_its_write(db: Database) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(tx: Transaction) -> str:
        started.set()
        await release.wait()
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-slow", "value": b"v"})
        return "job-slow"

    caller = asyncio.create_task(db.write(slow))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    for _ in range(100):
        if await job_names(db) == {"job-slow"}:
            break
        await asyncio.sleep(0.01)
    assert await job_names(db) == {"job-slow"}


def test_postgres_write_lanes_must_leave_the_pool_a_connection_for_reads() -> None:
    with pytest.raises(pydantic.ValidationError, match="pg_write_lanes"):
        Settings(pg_pool_size=4, pg_write_lanes=4)
    assert Settings(pg_pool_size=5, pg_write_lanes=4).pg_write_lanes == 4
