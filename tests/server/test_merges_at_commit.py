"""The sends of a batch merge into members' streams together, just before the batch
commits (``storage/member_fanout.MergesAtCommit``, ``spans.merge_conversations``), and the
jobs that did not say they may leave work for the commit see it done
(``Transaction.before_commit``). The merge's one write statement keeps its prepared plan
on PostgreSQL (``spans._PG_WRITE``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from chinwag.server.broker.base import EventsAppended
from chinwag.server.storage import spans
from chinwag.server.storage.database import Database, Transaction
from chinwag.server.storage.member_fanout import MergesAtCommit
from tests.support import POSTGRES_ONLY, AppFixture, RunningServer, bearer, migrated_database

Headers = dict[str, str]


@dataclass
class Recorder:
    """Work left for the commit: notes when it is done, and how much was left."""

    log: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    async def settle(self, tx: Transaction) -> None:
        self.log.append(f"settled {'+'.join(self.left)}")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated_database(database_url, pg_lanes=1) as database:
        yield database


async def test_work_left_for_the_commit_is_done_before_the_next_other_job(db: Database) -> None:
    log: list[str] = []

    def leaving(name: str) -> Any:
        async def job(tx: Transaction) -> str:
            log.append(name)
            recorder = tx.before_commit(Recorder)
            recorder.log = log
            recorder.left.append(name)
            return name

        return job

    def other(name: str) -> Any:
        async def job(tx: Transaction) -> str:
            log.append(name)
            return name

        return job

    jobs = [
        db.write(leaving("a"), key="k", leaves_work=True),
        db.write(leaving("b"), key="k", leaves_work=True),
        db.write(other("c"), key="k"),
        db.write(leaving("d"), key="k", leaves_work=True),
    ]
    assert await asyncio.gather(*jobs) == ["a", "b", "c", "d"]
    # One transaction: what a and b left is done before c, what d left before the commit.
    assert log == ["a", "b", "settled a+b", "c", "d", "settled d"]


async def test_a_job_that_fails_after_leaving_work_leaves_none_behind(db: Database) -> None:
    log: list[str] = []

    async def leave_then_fail(tx: Transaction) -> None:
        recorder = tx.before_commit(Recorder)
        recorder.log = log
        recorder.left.append("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.write(leave_then_fail, key="k", leaves_work=True)
    assert log == []


@POSTGRES_ONLY
async def test_a_batch_of_sends_merges_once_and_announces_every_reader(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    alice: Headers,
    bob: Headers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sends to three conversations that share members, arriving together: fewer merges
    than sends, each stream dense with every message once and each conversation in log
    order, every sender's read mark at their message, and each message's doorbell naming
    each member at the stream position the message took there."""
    carol = await bearer(client, app, "carol", server.clock.now())
    convs = []
    for members in (["bob"], ["bob"], ["bob", "carol"]):
        made = await client.post("/v1/conversations", json={"participants": members}, headers=alice)
        assert made.status_code == 201, made.text
        convs.append(made.json()["id"])
    # Sends merged together, per committed transaction. Two lanes' batches can meet on
    # alice's and bob's rows and then run again job by job (``pg_batching.py``): a merge
    # rolled back with its batch is not counted.
    merges: list[int] = []
    real_settle = MergesAtCommit.settle

    async def counted(self: MergesAtCommit, tx: Transaction) -> None:
        together = len(self._sent)
        await real_settle(self, tx)
        tx.after_commit(lambda: merges.append(together))

    monkeypatch.setattr(MergesAtCommit, "settle", counted)
    doorbells: list[EventsAppended] = []
    publish = server.services.publish

    def heard(message: Any) -> None:
        if isinstance(message, EventsAppended):
            doorbells.append(message)
        publish(message)

    monkeypatch.setattr(server.services, "publish", heard)

    async def send(conv: str, who: Headers) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x"}]}
        return await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=who)

    senders = (alice, bob, carol)
    answers = await asyncio.gather(
        *(send(convs[i % 3], senders[i % (2 if i % 3 < 2 else 3)]) for i in range(60))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert sum(merges) == 60  # every send merged once, in a committed transaction
    assert len(merges) < 60  # some batches held several sends

    by_id = {a.json()["id"]: a.json() for a in answers}
    announced: dict[str, dict[str, int]] = {}
    for doorbell in doorbells:
        message = orjson.loads(doorbell.event_json)["data"]["message"]
        announced[message["id"]] = {str(pk): pos for pk, pos in doorbell.targets}
    assert len(doorbells) == 60  # one doorbell per message
    assert set(announced) == set(by_id)

    for who, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        page = await client.get("/v1/events", headers=who, params={"limit": 500})
        events = page.json()["events"]
        assert [e["cursor"] for e in events] == list(range(1, len(events) + 1))  # dense
        created = [e for e in events if e["event"]["type"] == "message.created"]
        ids = [e["event"]["data"]["message"]["id"] for e in created]
        assert len(ids) == len(set(ids))  # once each
        mine = {m for m, a in by_id.items() if name in _members(a, convs)}
        assert set(ids) == mine
        for conv in convs:  # each conversation in log order
            positions = [
                e["event"]["data"]["message"]["position"]
                for e in created
                if e["event"]["data"]["message"]["conversation_id"] == conv
            ]
            assert positions == sorted(positions)
        for event in created:  # the doorbell named this reader at this stream position
            message_id = event["event"]["data"]["message"]["id"]
            assert event["cursor"] in announced[message_id].values()

    for who, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        for conv in convs:  # a sender has read and received up to their last message
            sent = [a["position"] for a in by_id.values() if a["conversation_id"] == conv and
                    a["sender_id"] == name]  # fmt: skip
            if not sent:
                continue
            got = (await client.get(f"/v1/conversations/{conv}", headers=who)).json()
            assert got["read_position"] >= max(sent)
            assert got["delivered_position"] >= max(sent)


def _members(answer: dict[str, Any], convs: list[str]) -> set[str]:
    return {"alice", "bob"} | ({"carol"} if answer["conversation_id"] == convs[2] else set())


_PLANS = text(
    "SELECT coalesce(max(generic_plans), 0) FROM pg_prepared_statements"
    " WHERE statement LIKE 'WITH extended AS%'"
)


@POSTGRES_ONLY
async def test_the_merge_write_switches_to_its_generic_plan(db: Database) -> None:
    """PostgreSQL plans a prepared statement for its parameters five times, then keeps the
    generic plan unless the custom ones look cheaper. A write for one or two members must
    not look cheaper than the generic plan (it did while arrays went to ``unnest`` bare,
    and every send's merge was planned afresh: a fifth of PostgreSQL's CPU per send)."""
    plan = spans._Plan(
        extend=[{"u_pk": 1, "at": 1, "new_last": 2}],
        heads={1: 2, 2: 3},
        streamed=[
            {"conv_id": "c", "u_pk": 1, "merged": 2},
            {"conv_id": "c", "u_pk": 2, "merged": 2},
        ],
    )
    async with db.transaction() as tx:
        for _ in range(8):  # the rows do not exist: nothing is written, the plan is made
            await spans._write_in_one(tx.conn, plan, {("c", 1): 2})
        generic = (await tx.conn.execute(_PLANS)).scalar_one()
    assert generic >= 2
