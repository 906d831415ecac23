"""A PostgreSQL lane's batch of sends runs together (``handlers/messages._send_together``):
their conversations' locks in two round trips and their inserts in one, however many sends
there are, and a send the batch cannot answer costs the others only time.

Each test holds the lane with a job of its own until the sends it makes have queued behind
it, so they form one batch whatever the machine's speed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from chinwag.server.settings import Settings
from chinwag.server.storage.database import Transaction
from tests.support import POSTGRES_ONLY, AppFixture, RunningServer, bearer

pytestmark = [pytest.mark.postgres, POSTGRES_ONLY]

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, auth_rate_per_second=0, rate_limits=False, pg_write_lanes=1
    )


class Lane:
    """The server's one write lane: held by a job of the test's, its statements logged."""

    def __init__(self, server: RunningServer) -> None:
        lanes = server.services.db._lanes
        assert lanes is not None
        self._lane = lanes._lanes[0]
        self.statements: list[str] = []

    def queued(self) -> int:
        return len(self._lane._queue)

    async def wait_queued(self, count: int) -> None:
        """Until ``count`` jobs wait in the lane (bounded: 10 s): requests reach it as
        the server reads them."""
        deadline = time.monotonic() + 10
        while self.queued() < count:
            assert time.monotonic() < deadline, f"{self.queued()} of {count} queued"
            await asyncio.sleep(0.01)

    @asynccontextmanager
    async def held_until(self, count: int) -> AsyncIterator[None]:
        """Hold the lane while the block runs, and after it until ``count`` jobs have
        queued behind the holder (bounded: 10 s); log the statements of the batch they
        then form."""
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold(tx: Transaction) -> None:
            holding.set()
            await release.wait()

        db = self._lane._db
        holder = asyncio.ensure_future(db.write(hold, key="held"))
        await asyncio.wait_for(holding.wait(), 10)
        conn = await self._lane.connection()
        raw: asyncpg.Connection = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        try:
            yield
            await self.wait_queued(count)
            raw.add_query_logger(self._log)
        finally:
            release.set()
            await holder

    def _log(self, record: Any) -> None:
        self.statements.append(record.query)

    def count(self, fragment: str) -> int:
        return sum(fragment in statement for statement in self.statements)


def text(body: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]}


async def start_send(
    client: httpx.AsyncClient, who: Headers, conv: str, body: dict[str, Any]
) -> asyncio.Future[httpx.Response]:
    return asyncio.ensure_future(
        client.post(f"/v1/conversations/{conv}/messages", json=body, headers=who)
    )


async def conversations(client: httpx.AsyncClient, alice: Headers, count: int) -> list[str]:
    made = []
    for _ in range(count):
        answer = await client.post(
            "/v1/conversations", json={"participants": ["bob", "carol"]}, headers=alice
        )
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["id"])
    return made


async def created_for(client: httpx.AsyncClient, who: Headers) -> list[str]:
    stream = await client.get("/v1/events", headers=who, params={"limit": 500})
    return [
        e["event"]["data"]["message"]["id"]
        for e in stream.json()["events"]
        if e["event"]["type"] == "message.created"
    ]


def refusal_reruns() -> float:
    found = REGISTRY.get_sample_value("chinwag_group_commit_reruns_total", {"reason": "refusal"})
    return found or 0.0


@pytest.fixture
async def carol(server: RunningServer, client: httpx.AsyncClient, app: AppFixture) -> Headers:
    return await bearer(client, app, "carol", server.clock.now())


async def test_a_batch_of_sends_takes_its_locks_and_inserts_in_few_round_trips(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, bob: Headers, carol: Headers
) -> None:
    convs = await conversations(client, alice, 6)
    targets = [*convs, convs[0], convs[0]]  # three to the first: positions 1, 2, 3
    lane = Lane(server)
    async with lane.held_until(len(targets)):
        sends = [
            await start_send(client, (alice, bob)[i % 2], conv, text(f"m{i}"))
            for i, conv in enumerate(targets)
        ]
    answers = [await send for send in sends]
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    for conv in convs:
        positions = [a.json()["position"] for a in answers if a.json()["conversation_id"] == conv]
        assert sorted(positions) == list(range(1, len(positions) + 1))  # in the order queued
    # A round trip per send to one conversation: eight inserts in three.
    assert lane.count("INSERT INTO messages") == 3
    # The first lock begins the transaction through SQLAlchemy (which asyncpg may not
    # log); the rest are one round trip.
    assert 1 <= lane.count("FOR NO KEY UPDATE OF conversations") <= 2, lane.statements
    sent = sorted(a.json()["id"] for a in answers)
    for who in (alice, bob, carol):
        assert sorted(await created_for(client, who)) == sent  # each event once


async def in_order(
    lane: Lane, client: httpx.AsyncClient, sends: list[tuple[Headers, str, dict[str, Any]]]
) -> list[asyncio.Future[httpx.Response]]:
    """Start each send once the one before has queued: the batch holds them in this order."""
    started = []
    for who, conv, body in sends:
        started.append(await start_send(client, who, conv, body))
        await lane.wait_queued(len(started))
    return started


async def test_a_retry_in_a_batch_is_answered_as_a_repeat_and_costs_the_others_nothing(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, bob: Headers, carol: Headers
) -> None:
    a, b, c = await conversations(client, alice, 3)
    first, twice = text("first"), text("twice")
    assert (await (await start_send(client, alice, a, first))).status_code == 201
    reruns = refusal_reruns()
    lane = Lane(server)
    async with lane.held_until(6):
        sends = await in_order(lane, client, [
            (alice, b, text("b1")),
            (alice, a, first),  # a retry whose answer was lost
            (bob, c, text("c1")),
            (bob, a, text("a2")),
            (alice, b, twice),
            (alice, b, twice),  # retried before the first try was answered
        ])  # fmt: skip
    answers = [await send for send in sends]
    assert [a.status_code for a in answers] == [201, 200, 201, 201, 201, 200], [
        a.text for a in answers
    ]
    assert [a.json()["position"] for a in answers] == [1, 1, 1, 2, 2, 2]
    assert refusal_reruns() == reruns  # answered in the batch, not by running it again
    assert lane.count("INSERT INTO messages") == 3  # b: three sends, so three rounds
    stream = await created_for(client, carol)
    assert sorted(stream) == sorted({a.json()["id"] for a in answers})


async def test_a_sender_who_left_or_whose_session_ended_is_refused_alone(
    server: RunningServer,
    client: httpx.AsyncClient,
    pg_admin: asyncpg.Connection,
    alice: Headers,
    bob: Headers,
    carol: Headers,
) -> None:
    convs = await conversations(client, alice, 2)
    left = await client.post(f"/v1/conversations/{convs[1]}/leave", headers=carol)
    assert left.status_code == 204, left.text
    reruns = refusal_reruns()
    lane = Lane(server)
    async with lane.held_until(4):
        sends = await in_order(lane, client, [
            (alice, convs[0], text("kept")),
            (carol, convs[1], text("gone")),  # she left
            (bob, convs[0], text("ended")),
            (alice, convs[1], text("also kept")),
        ])  # fmt: skip
        await pg_admin.execute(  # bob's session ends while his send waits in the lane
            "UPDATE sessions SET revoked_at = $1, revoked_reason = 'revoked'"
            " WHERE user_pk = (SELECT pk FROM users WHERE user_id = 'bob')",
            time.time(),
        )
    answers = [await send for send in sends]
    assert [a.status_code for a in answers] == [201, 403, 401, 201], [a.text for a in answers]
    assert [a.json()["position"] for a in (answers[0], answers[3])] == [1, 1]
    assert refusal_reruns() == reruns
    assert sorted(await created_for(client, alice)) == sorted(
        answers[i].json()["id"] for i in (0, 3)
    )
