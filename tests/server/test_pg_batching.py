"""Group commit on PostgreSQL (``storage/pg_batching.py``): lanes of shared transactions
that never cost a job its outcome, and sends that stay dense and exactly-once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from chinwag.core.errors import NotFound
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database, Transaction
from chinwag.server.storage.pg_batching import BATCH_LOCK_TIMEOUT
from chinwag.server.storage.schema import server_secrets
from tests.server.test_storage_batching import INSERT_SECRET, job_names, writer
from tests.support import POSTGRES_ONLY, migrated_database, pg_connect

pytestmark = [pytest.mark.postgres, POSTGRES_ONLY]

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, auth_rate_per_second=0, rate_limits=False, pg_write_lanes=2
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated_database(database_url, pg_lanes=2) as database:
        yield database


async def test_jobs_of_one_key_arriving_together_share_one_transaction(db: Database) -> None:
    seen: list[Transaction] = []
    jobs = (db.write(writer(f"job-{i}", seen), key="conversation") for i in range(10))
    assert await asyncio.gather(*jobs) == [f"job-{i}" for i in range(10)]
    assert len({id(tx) for tx in seen}) == 1
    assert await job_names(db) == {f"job-{i}" for i in range(10)}


async def test_lanes_commit_in_parallel_transactions(db: Database) -> None:
    """Unkeyed jobs take the lanes in turn: two lanes, two transactions at once."""
    seen: list[Transaction] = []
    await asyncio.gather(*(db.write(writer(f"job-{i}", seen)) for i in range(10)))
    assert len({id(tx) for tx in seen}) == 2
    assert await job_names(db) == {f"job-{i}" for i in range(10)}


async def test_a_refusal_in_a_batch_is_rolled_back_and_the_others_kept(db: Database) -> None:
    async def write_then_refuse(tx: Transaction) -> str:
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-refused", "value": b"v"})
        raise NotFound("no")

    seen: list[Transaction] = []
    outcomes: tuple[object, ...] = await asyncio.gather(
        db.write(writer("job-a", seen), key="k"),
        db.write(write_then_refuse, key="k"),
        db.write(writer("job-b", seen), key="k"),
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
        db.write(writer("job-a", seen), key="k"),
        db.write(broken, key="k"),
        db.write(writer("job-b", seen), key="k"),
        return_exceptions=True,
    )
    assert outcomes[0] == "job-a"
    assert isinstance(outcomes[1], Exception)
    assert not isinstance(outcomes[1], NotFound)
    assert outcomes[2] == "job-b"
    assert await job_names(db) == {"job-a", "job-b"}


async def test_a_batch_waiting_on_a_lock_falls_back_to_one_transaction_per_job(
    db: Database, database_url: str
) -> None:
    """A lock held elsewhere past the batch's lock_timeout: the batch gives up its locks
    and its jobs run alone, each waiting as long as it must; nothing fails."""
    async with db.transaction() as tx:
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-held", "value": b"v"})
    holder = await pg_connect(database_url)
    held = holder.transaction()
    await held.start()
    await holder.execute("SELECT 1 FROM server_secrets WHERE name = 'job-held' FOR UPDATE")

    async def touch_held(tx: Transaction) -> str:
        await tx.conn.execute(
            select(server_secrets.c.name)
            .where(server_secrets.c.name == "job-held")
            .with_for_update()
        )
        return "job-touched"

    seen: list[Transaction] = []
    reruns = _database_reruns()
    writes = asyncio.gather(
        db.write(writer("job-a", seen), key="k"),
        db.write(touch_held, key="k"),
        db.write(writer("job-b", seen), key="k"),
    )
    # The lock is released only once the batch has given up on it (its 200 ms
    # lock_timeout): a fixed half-second sleep was too short on a busy machine, the lock
    # came free while the batch still waited, and it committed whole.
    async with asyncio.timeout(30):
        while _database_reruns() == reruns:
            await asyncio.sleep(0.01)
    await held.rollback()
    await holder.close()
    assert list(await writes) == ["job-a", "job-touched", "job-b"]  # gather is typed as a tuple
    assert len({id(tx) for tx in seen}) == 3  # the batch's (rolled back), job-a's, job-b's
    assert await job_names(db) == {"job-a", "job-b", "job-held"}


def _database_reruns() -> float:
    found = REGISTRY.get_sample_value("chinwag_group_commit_reruns_total", {"reason": "database"})
    return found or 0.0


async def _backend_pid(tx: Transaction) -> int:
    return int((await tx.conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_lane_keeps_its_connection_between_batches(db: Database) -> None:
    """No pool checkout, pre-ping or ``SET LOCAL`` per batch: one backend serves the lane,
    with its lock timeout set once for the session."""

    async def pid_and_lock_timeout(tx: Transaction) -> tuple[int, str]:
        timeout = (await tx.conn.execute(text("SHOW lock_timeout"))).scalar_one()
        return await _backend_pid(tx), str(timeout)

    first = await db.write(pid_and_lock_timeout, key="k")
    second = await db.write(pid_and_lock_timeout, key="k")
    assert first == second
    assert first[1] == BATCH_LOCK_TIMEOUT


async def test_a_lone_job_that_refuses_leaves_nothing_written(db: Database) -> None:
    async def write_then_refuse(tx: Transaction) -> str:
        await INSERT_SECRET.rowcount(tx.conn, {"name": "job-refused", "value": b"v"})
        raise NotFound("no")

    with pytest.raises(NotFound):
        await db.write(write_then_refuse, key="k")
    assert await job_names(db) == set()


async def test_a_lanes_dropped_connection_costs_the_write_a_retry_not_its_outcome(
    db: Database, database_url: str
) -> None:
    """The lane's backend terminated between batches: the next write runs again on a
    pooled connection and succeeds, and the lane connects afresh."""
    lane_pid = await db.write(_backend_pid, key="k")
    admin = await pg_connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", lane_pid)
        while await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", lane_pid
        ):
            await asyncio.sleep(0.01)  # the backend is gone only once it has exited
    finally:
        await admin.close()
    reruns = _database_reruns()
    seen: list[Transaction] = []
    assert await db.write(writer("job-after", seen), key="k") == "job-after"
    assert _database_reruns() == reruns + 1  # what an operator sees of it
    assert await job_names(db) == {"job-after"}
    assert await db.write(_backend_pid, key="k") not in (lane_pid, None)


async def test_concurrent_sends_to_shared_users_stay_dense_and_exactly_once(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    """Two conversations of the same two users, in different lanes, sent to at once by
    both: every send answered 201, positions 1..n per conversation, each event once."""
    convs = []
    for _ in range(4):
        made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
        assert made.status_code == 201, made.text
        convs.append(made.json()["id"])

    async def send(conv: str, who: Headers) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x"}]}
        return await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=who)

    answers = await asyncio.gather(
        *(send(convs[i % 4], (alice, bob)[i % 3 == 0]) for i in range(80))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    for conv in convs:
        positions = sorted(
            a.json()["position"] for a in answers if a.json()["conversation_id"] == conv
        )
        assert positions == list(range(1, len(positions) + 1))
    stream = await client.get("/v1/events", headers=bob, params={"limit": 500})
    created = [
        e["event"]["data"]["message"]["id"]
        for e in stream.json()["events"]
        if e["event"]["type"] == "message.created"
    ]
    assert sorted(created) == sorted(a.json()["id"] for a in answers)


async def test_warmed_lanes_are_connected_and_have_learned_the_array_types(
    database_url: str,
) -> None:
    """``Database.warm`` (before the node serves) connects the lanes, and every connection
    learns the array types when it connects: a node's first send binding them runs no
    type lookup (three statements, 25-50 ms) in its transaction. The migration's DDL
    makes asyncpg forget them on its connection, which a lane then takes over."""
    async with migrated_database(database_url, pg_lanes=2) as db:
        await db.warm()
        async with db.read() as conn:
            found = await conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            warmed = {int(pid) for pid in found.scalars()}
        queries: list[str] = []

        def logged(record: Any) -> None:
            queries.append(record.query)

        async def binds_arrays(tx: Transaction) -> int:
            sync = tx.conn.sync_connection
            assert sync is not None
            raw = sync.connection.driver_connection
            assert raw is not None
            raw.add_query_logger(logged)
            try:
                await tx.conn.execute(
                    text("SELECT CAST(:pks AS BIGINT[]), CAST(:ids AS VARCHAR[])"),
                    {"pks": [1, 2], "ids": ["a"]},
                )
            finally:
                raw.remove_query_logger(logged)
            return await _backend_pid(tx)

        pids = {await db.write(binds_arrays, key=key) for key in ("a", "b", "c", "d")}
        async with db.transaction() as tx:  # a pooled connection learnt them at connect
            await binds_arrays(tx)
    assert pids <= warmed
    assert queries
    assert not [q for q in queries if "pg_type" in q]
