"""Big conversations write a message once, to the conversation's log; members' streams get
it through spans merged lazily (``storage/spans.py``, ``server/live_merge.py``). The
streams keep every promise: dense, in order, exactly once, whatever merges when."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from chinwag.server.broker import ConversationAdvanced
from chinwag.server.storage.member_fanout import EAGER_MEMBERS
from chinwag.server.storage.schema import user_events
from tests.server.test_websocket import open_device
from tests.support import AppFixture, RunningServer, bearer, read_whole_stream

Headers = dict[str, str]
MEMBERS = EAGER_MEMBERS + 4
"""Past the eager threshold: sends are merged lazily."""


async def _room(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, *names: str
) -> tuple[str, dict[str, Headers]]:
    """A conversation of ``MEMBERS`` made by ``names[0]``; the named members signed in."""
    now = server.clock.now()
    signed = {name: await bearer(client, app, name, now) for name in names}
    others = [*names[1:], *(f"extra{i}" for i in range(MEMBERS - len(names)))]
    made = await client.post(
        "/v1/conversations", json={"participants": others}, headers=signed[names[0]]
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"]), signed


async def _send(client: httpx.AsyncClient, headers: Headers, conv: str, body: str) -> int:
    parts = [{"mime_type": "text/plain", "body": body}]
    sent = await client.post(
        f"/v1/conversations/{conv}/messages",
        json={"id": str(uuid.uuid4()), "parts": parts},
        headers=headers,
    )
    assert sent.status_code == 201, sent.text
    return int(sent.json()["position"])


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["data"]["message"]["parts"][0]["body"] for e in events if e["type"] == "message.created"
    ]


async def _index_rows(server: RunningServer) -> int:
    async with server.services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(user_events))).scalar_one())


async def test_a_send_writes_no_row_per_member_until_someone_reads(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    conv, users = await _room(server, client, app, "alice", "bob")
    before = await _index_rows(server)
    for i in range(10):
        await _send(client, users["alice"], conv, f"m{i}")
    assert await _index_rows(server) == before
    assert _bodies(await read_whole_stream(client, users["bob"])) == [f"m{i}" for i in range(10)]
    assert await _index_rows(server) == before + 1  # one span: bob's ten messages


async def test_sending_marks_read_and_received_for_the_sender_in_a_big_conversation(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """Without a merge in the send to carry them, the sender's marks are written alone."""
    conv, users = await _room(server, client, app, "alice", "bob")
    await _send(client, users["bob"], conv, "first")
    position = await _send(client, users["alice"], conv, "second")
    seen = (await client.get(f"/v1/conversations/{conv}", headers=users["alice"])).json()
    assert (seen["read_position"], seen["delivered_position"]) == (position, position)
    assert seen["unread_count"] == 0
    theirs = (await client.get(f"/v1/conversations/{conv}", headers=users["bob"])).json()
    assert (theirs["read_position"], theirs["unread_count"]) == (position - 1, 1)


async def test_a_leave_comes_after_the_messages_before_it(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    conv, users = await _room(server, client, app, "alice", "bob")
    for i in range(3):
        await _send(client, users["alice"], conv, f"m{i}")
    left = await client.post(f"/v1/conversations/{conv}/leave", headers=users["bob"])
    assert left.status_code == 204, left.text
    await _send(client, users["alice"], conv, "after")
    types = [e["type"] for e in await read_whole_stream(client, users["bob"])]
    assert types.index("conversation.left") > max(
        i for i, t in enumerate(types) if t == "message.created"
    )
    assert _bodies(await read_whole_stream(client, users["bob"])) == ["m0", "m1", "m2"]


async def test_a_blocked_senders_messages_are_skipped_in_the_blockers_spans(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    conv, users = await _room(server, client, app, "alice", "bob", "carol")
    assert (await client.post("/v1/me/blocks/bob", headers=users["carol"])).status_code == 204
    for i in range(6):
        await _send(client, users["alice" if i % 3 else "bob"], conv, f"m{i}")
    assert _bodies(await read_whole_stream(client, users["carol"])) == ["m1", "m2", "m4", "m5"]
    assert _bodies(await read_whole_stream(client, users["alice"])) == [f"m{i}" for i in range(6)]


async def test_a_device_resumes_in_the_middle_of_a_span(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    conv, users = await _room(server, client, app, "alice", "bob")
    head = int((await client.get("/v1/events?limit=1", headers=users["bob"])).json()["head"])
    for i in range(9):
        await _send(client, users["alice"], conv, f"m{i}")
    in_threes = await read_whole_stream(client, users["bob"], after=head, limit=3)
    assert _bodies(in_threes) == [f"m{i}" for i in range(9)]
    assert await read_whole_stream(client, users["bob"], after=head + 4) == in_threes[4:]
    device = await open_device(server, users["bob"]["Authorization"][7:], after=head + 5)
    await device.until_caught_up()
    assert device.events == in_threes[5:]
    await _send(client, users["alice"], conv, "live")
    await device.until_cursor(head + 10)
    assert _bodies(device.events[-1:]) == ["live"]
    await device.ws.close()


async def test_concurrent_sends_reach_connected_members_live_exactly_once_in_order(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """40 sends at once from four senders (on PostgreSQL: concurrent transactions in its
    write lanes, merges racing sends and each other's rounds)."""
    names = ("alice", "bob", "carol", "dave")
    conv, users = await _room(server, client, app, *names)
    devices = [await open_device(server, users[n]["Authorization"][7:]) for n in names]
    for device in devices:
        await device.until_caught_up()
    sent = await asyncio.gather(
        *(_send(client, users[names[i % 4]], conv, f"m{i}") for i in range(40))
    )
    assert sorted(sent) == list(range(1, 41))
    for device in devices:
        await device.until_cursor(device.hello["head"] + 40, timeout=60)
        got = [e["data"]["message"]["position"] for e in device.events]
        assert got == list(range(1, 41))  # in log order, nothing twice (Device checks density)
        await device.ws.close()
    offline = await bearer(client, app, "extra0", server.clock.now())
    assert len(_bodies(await read_whole_stream(client, offline))) == 40


async def test_a_forged_conversation_doorbell_delivers_nothing_wrong(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    conv, users = await _room(server, client, app, "alice", "bob")
    elsewhere, strangers = await _room(server, client, app, "mallory", "eve")
    await _send(client, strangers["mallory"], elsewhere, "not for bob")
    device = await open_device(server, users["bob"]["Authorization"][7:])
    await device.until_caught_up()
    forgeries = (
        ConversationAdvanced(conv, 10**9),  # a position the log never reached
        ConversationAdvanced(elsewhere, 1),  # a conversation bob is not in
        ConversationAdvanced("no-such-conversation", 5),
    )
    for forged in forgeries:
        server.services.doorbells.remote(forged)
    await _send(client, users["alice"], conv, "real")
    await device.until_cursor(device.hello["head"] + 1)
    assert _bodies(device.events) == ["real"]  # the next cursor is the real message
    rest = await read_whole_stream(client, users["bob"], after=device.hello["head"])
    assert _bodies(rest) == ["real"]
    await device.ws.close()
