"""Who sees what: a former participant sees the conversation as it was when they left;
profiles only while a conversation is shared; typing follows membership at once; members
added (or re-added) later see the whole history."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chinwag.core.typing import TypingState
from chinwag.server.broker import Doorbell, EventsAppended, Signal
from chinwag.server.typing_relay import TypingRelay, participants_removed
from tests.server.test_websocket import create_conversation, open_device, sign_in
from tests.support import AppFixture, RunningServer, bearer

Headers = dict[str, str]


async def send(client: httpx.AsyncClient, headers: Headers, conv: str, text: str) -> Any:
    body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": text}]}
    answer = await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def group(client: httpx.AsyncClient, alice: Headers) -> str:
    made = await client.post(
        "/v1/conversations",
        json={"participants": ["bob", "carol"], "metadata": {"title": "before"}},
        headers=alice,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def remove(client: httpx.AsyncClient, headers: Headers, conv: str, user_id: str) -> None:
    gone = await client.delete(f"/v1/conversations/{conv}/participants/{user_id}", headers=headers)
    assert gone.status_code == 204, gone.text


async def add(client: httpx.AsyncClient, headers: Headers, conv: str, *user_ids: str) -> None:
    added = await client.post(
        f"/v1/conversations/{conv}/participants", json={"user_ids": list(user_ids)}, headers=headers
    )
    assert added.status_code == 200, added.text


async def test_a_removed_participant_sees_metadata_and_members_as_when_they_left(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = await group(client, alice)
    await remove(client, alice, conv, "bob")
    changed = await client.patch(
        f"/v1/conversations/{conv}", json={"metadata": {"set": {"title": "after"}}}, headers=alice
    )
    assert changed.status_code == 200
    await add(client, alice, conv, "dave")
    seen = (await client.get(f"/v1/conversations/{conv}", headers=bob)).json()
    assert seen["left"] is True
    assert seen["metadata"] == {"title": "before"}
    assert seen["participants"] == ["alice", "carol"]
    (listed,) = (await client.get("/v1/conversations", headers=bob)).json()["conversations"]
    assert (listed["metadata"], listed["participants"]) == ({"title": "before"}, ["alice", "carol"])
    now = (await client.get(f"/v1/conversations/{conv}", headers=alice)).json()
    assert (now["metadata"], now["participants"]) == (
        {"title": "after"},
        ["alice", "carol", "dave"],
    )


async def test_profiles_are_visible_only_while_a_conversation_is_shared(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    dave = await bearer(client, app, "dave", server.clock.now())
    conv = await group(client, alice)
    assert (await client.get("/v1/users/alice", headers=bob)).status_code == 200
    await remove(client, alice, conv, "bob")
    await add(client, alice, conv, "dave")
    for user_id in ("dave", "alice", "carol"):  # added later, or no longer shared
        answer = await client.get(f"/v1/users/{user_id}", headers=bob)
        assert answer.status_code == 404, user_id
        assert answer.json()["error"]["id"] == "not_found"
    assert (await client.get("/v1/users/bob", headers=alice)).status_code == 404
    assert (await client.get("/v1/users/bob", headers=bob)).status_code == 200  # oneself
    assert (await client.get("/v1/users/alice", headers=dave)).status_code == 200


async def test_a_re_added_member_sees_the_whole_history_including_their_absence(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = await group(client, alice)
    await send(client, alice, conv, "one")
    await remove(client, alice, conv, "bob")
    await send(client, alice, conv, "while bob was out")
    await add(client, alice, conv, "bob")
    history = (await client.get(f"/v1/conversations/{conv}/messages", headers=bob)).json()
    texts = [m["parts"][0]["body"] for m in history["messages"]]
    assert texts == ["one", "while bob was out"]
    seen = (await client.get(f"/v1/conversations/{conv}", headers=bob)).json()
    assert (seen["left"], sorted(seen["participants"])) == (False, ["alice", "bob", "carol"])


class _Published:
    def __init__(self) -> None:
        self.signals: list[Signal] = []

    def __call__(self, doorbell: Doorbell) -> None:
        assert isinstance(doorbell, Signal)
        self.signals.append(doorbell)


def removed_doorbell(conv: str, remaining: list[int]) -> EventsAppended:
    event = (
        b'{"type":"conversation.participants_removed","at":1.0,"data":{"conversation_id":"'
        + conv.encode()
        + b'","user_ids":["x"],"participants":[]}}'
    )
    return EventsAppended(event_json=event, targets=tuple((pk, 9) for pk in remaining))


def test_a_removal_drops_the_listener_and_forgets_a_removed_typist() -> None:
    published = _Published()
    relay = TypingRelay(published, pause_after=2.5, finish_after=5.0)
    for typist in (1, 2):
        relay.update(
            conversation_id="c", user_pk=typist, user_id=f"u{typist}", audience=[1, 2, 3],
            state=TypingState.STARTED, now=0.0,
        )  # fmt: skip
    relay.update(
        conversation_id="other", user_pk=1, user_id="u1", audience=[1, 3],
        state=TypingState.STARTED, now=0.0,
    )  # fmt: skip
    published.signals.clear()
    removal = participants_removed(removed_doorbell("c", [1, 2]))
    assert removal == ("c", frozenset({1, 2}))
    relay.members_changed(*removal)
    relay.sweep(3.0)
    paused = {(s.user_pks, s.frame.count(b'"other"')) for s in published.signals}
    assert paused == {((2,), 0), ((1,), 0), ((3,), 1)}  # 3 hears only the other conversation
    published.signals.clear()
    relay.members_changed("c", frozenset({1}))  # 2 removed while typing
    (finished,) = published.signals
    assert (finished.user_pks, b'"finished"' in finished.frame) == ((1,), True)
    assert (
        participants_removed(EventsAppended(event_json=b'{"type":"receipt"}', targets=())) is None
    )


async def test_a_removed_participant_gets_no_more_typing_signals(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    bob = await sign_in(client, app, "bob", server.clock.now())
    carol = await sign_in(client, app, "carol", server.clock.now())
    conv = await create_conversation(client, alice, ["bob", "carol"])
    a, b, c = [await open_device(server, u.token) for u in (alice, bob, carol)]
    for device in (a, b, c):
        await device.until_caught_up()
    assert (await a.request("typing.update", {"conversation_id": conv, "state": "started"}))["ok"]
    await b.until_signal(1)
    await c.until_signal(1)
    await remove(client, alice.headers, conv, "carol")
    await c.until_cursor(c.hello["head"] + 1)  # conversation.left has reached carol
    server.clock.advance(3)
    paused = await b.until_signal(2)
    assert paused["data"]["state"] == "paused"
    with pytest.raises(TimeoutError):
        await c.frame(timeout=1.0)
    assert len(c.signals) == 1
    for device in (a, b, c):
        await device.ws.close()
