"""Messages over REST: idempotent send, size rules, paging, deletion, unread counts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import POSTGRES_ONLY, AppFixture, RunningServer, bearer, make_app

Headers = dict[str, str]


def text(body: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or str(uuid.uuid4()),
        "parts": [{"mime_type": "text/plain", "body": body}],
    }


async def post(client: httpx.AsyncClient, headers: Headers, conv: str, body: Any) -> httpx.Response:
    return await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=headers)


async def bodies(client: httpx.AsyncClient, headers: Headers, conv: str, query: str = "") -> Any:
    answer = await client.get(f"/v1/conversations/{conv}/messages{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    return [m["parts"][0]["body"] if m["parts"] else None for m in page["messages"]], page[
        "has_more"
    ]


async def conversation(client: httpx.AsyncClient, headers: Headers, conv: str) -> Any:
    return (await client.get(f"/v1/conversations/{conv}", headers=headers)).json()


@pytest.fixture
async def conv(client: httpx.AsyncClient, alice: Headers, bob: Headers) -> str:
    made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    return str(made.json()["id"])


async def test_send_assigns_positions_and_tells_every_participant(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    first = await post(client, alice, conv, text("one"))
    second = await post(client, bob, conv, text("two"))
    assert first.status_code == second.status_code == 201
    assert (first.json()["position"], second.json()["position"]) == (1, 2)
    assert first.json()["sender_id"] == "alice"
    assert first.json()["sent_at"] == server.clock.now()
    assert first.json()["deleted"] is False
    events = (await client.get("/v1/events", headers=alice)).json()["events"]
    created = [
        e["event"]["data"]["message"] for e in events if e["event"]["type"] == "message.created"
    ]
    assert [m["position"] for m in created] == [1, 2]


async def test_the_same_message_sent_twice_is_stored_once(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    body = text("hello")
    assert (await post(client, alice, conv, body)).status_code == 201
    again = await post(client, alice, conv, body)
    assert again.status_code == 200
    assert again.json()["position"] == 1
    assert (await bodies(client, alice, conv))[0] == ["hello"]


async def test_concurrent_sends_of_one_id_store_one_message(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    body = text("once")
    answers = await asyncio.gather(*(post(client, alice, conv, body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert (await bodies(client, alice, conv))[0] == ["once"]
    assert (await conversation(client, alice, conv))["last_position"] == 1


async def test_reusing_an_id_for_other_content_is_id_in_use(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    message_id = str(uuid.uuid4())
    await post(client, alice, conv, text("first", message_id))
    for who, body in ((alice, "changed"), (bob, "first")):
        clash = await post(client, who, conv, text(body, message_id))
        assert clash.status_code == 409
        assert clash.json()["error"]["id"] == "id_in_use"


async def test_an_id_taken_in_another_conversation_is_id_in_use_and_writes_nothing(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    made = await client.post("/v1/conversations", json={"participants": ["carol"]}, headers=alice)
    other = str(made.json()["id"])
    heads = (await client.get("/v1/events", headers=alice)).json()["head"]
    taken = text("first")
    assert (await post(client, alice, conv, taken)).status_code == 201
    clash = await post(client, alice, other, taken)
    assert clash.status_code == 409
    assert clash.json()["error"]["id"] == "id_in_use"
    assert (await conversation(client, alice, other))["last_position"] == 0
    assert (await bodies(client, alice, other))[0] == []
    assert (await client.get("/v1/events", headers=alice)).json()["head"] == heads + 1
    following = await post(client, alice, other, text("second"))
    assert following.json()["position"] == 1


async def test_a_message_at_the_size_limit_is_accepted_and_one_byte_more_is_413(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    limit = 64 * 1024
    fits = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "a/b", "body": "é" * (limit // 2)}]}
    assert (await post(client, alice, conv, fits)).status_code == 201
    over = {
        "id": str(uuid.uuid4()),
        "parts": [
            {"mime_type": "a/b", "body": "x" * (limit - 1)},
            {"mime_type": "a/b", "body": "yz"},
        ],
    }
    answer = await post(client, alice, conv, over)
    assert answer.status_code == 413
    assert answer.json()["error"]["id"] == "message_too_large"


async def test_a_body_over_the_request_limit_is_413_not_500(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    answer = await post(client, alice, conv, text("x" * 300_000))
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"id": "not-a-uuid", "parts": [{"mime_type": "text/plain", "body": "x"}]},
        {"id": str(uuid.uuid4()).upper(), "parts": [{"mime_type": "text/plain", "body": "x"}]},
        {"id": 7, "parts": [{"mime_type": "text/plain", "body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": []},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "t/p", "body": "x"}] * 1001},
        {"id": str(uuid.uuid4()), "parts": [{"body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "", "body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "m" * 257, "body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "nope", "body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/", "body": "x"}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "t/p", "body": 5}]},
        {"id": str(uuid.uuid4()), "parts": [{"mime_type": "t/p", "body": "x", "extra": 1}]},
        {"id": str(uuid.uuid4()), "parts": ["text"]},
        {"id": str(uuid.uuid4()), "parts": "text"},
        {"id": str(uuid.uuid4())},
    ],
)
async def test_bad_messages_are_422(
    client: httpx.AsyncClient, alice: Headers, conv: str, body: Any
) -> None:
    """Whether the schema or the handler refuses it, ``data.property`` names the field."""
    answer = await post(client, alice, conv, body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["id"] == "invalid_request"
    assert str(error["data"]["property"]).startswith(("parts", "id")), error


async def test_a_lone_surrogate_in_a_body_is_422(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    raw = (
        b'{"id": "' + str(uuid.uuid4()).encode() + b'", '
        b'"parts": [{"mime_type": "text/plain", "body": "\\udc00"}]}'
    )
    headers = {**alice, "Content-Type": "application/json"}
    answer = await client.post(f"/v1/conversations/{conv}/messages", content=raw, headers=headers)
    assert answer.status_code == 422, answer.text


async def test_nul_characters_survive_on_every_database(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    assert (await post(client, alice, conv, text("a\x00b"))).status_code == 201
    assert (await bodies(client, alice, conv))[0] == ["a\x00b"]


async def test_paging_forwards_and_backwards(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    for i in range(1, 8):
        await post(client, alice, conv, text(str(i)))
    assert await bodies(client, alice, conv, "?limit=3") == (["5", "6", "7"], True)
    assert await bodies(client, alice, conv, "?before=5&limit=3") == (["2", "3", "4"], True)
    assert await bodies(client, alice, conv, "?before=3&limit=3") == (["1", "2"], False)
    assert await bodies(client, alice, conv, "?after=2&limit=3") == (["3", "4", "5"], True)
    assert await bodies(client, alice, conv, "?after=5&limit=3") == (["6", "7"], False)


async def test_a_page_stops_at_a_mebibyte_of_bodies_and_paging_on_loses_nothing(
    client: httpx.AsyncClient, alice: Headers, conv: str
) -> None:
    """Without the bound one ``limit=500`` page of 64 KiB messages was 32 MiB in memory.
    Small and large messages alternate: the statement carries the small ones' parts and the
    large ones are read after, by id; each must land on its own message."""
    sent = [f"{i:02d}" + ("x" * 60_000 if i % 2 else "") for i in range(1, 41)]
    for body in sent:
        assert (await post(client, alice, conv, text(body))).status_code == 201

    def cut(bodies: list[str]) -> list[str]:
        """The bound's rule, nearest the anchor first: stop before 1 MiB, keep at least one."""
        kept: list[str] = []
        total = 0
        for body in bodies:
            total += len(body.encode())
            if kept and total > 1024 * 1024:
                break
            kept.append(body)
        return kept

    forwards: list[str] = []
    after = 0
    while True:
        page = (
            await client.get(
                f"/v1/conversations/{conv}/messages?after={after}&limit=500", headers=alice
            )
        ).json()
        got = [m["parts"][0]["body"] for m in page["messages"]]
        assert got == cut(sent[len(forwards) :])
        forwards += got
        if not page["has_more"]:
            break
        after = page["messages"][-1]["position"]
    assert forwards == sent
    assert len(cut(sent)) < len(sent)  # the bound did cut: several pages
    newest, has_more = await bodies(client, alice, conv, "?limit=500")
    assert newest == cut(sent[::-1])[::-1]
    assert has_more is True


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=501", "?after=-1", "?before=x", "?after=1e99"]
)
async def test_bad_paging_queries_are_422(
    client: httpx.AsyncClient, alice: Headers, conv: str, query: str
) -> None:
    answer = await client.get(f"/v1/conversations/{conv}/messages{query}", headers=alice)
    assert answer.status_code == 422


async def test_sender_deletes_for_everyone(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    message = (await post(client, alice, conv, text("oops"))).json()
    denied = await client.delete(f"/v1/messages/{message['id']}?mode=all_participants", headers=bob)
    assert denied.status_code == 403
    gone = await client.delete(f"/v1/messages/{message['id']}?mode=all_participants", headers=alice)
    assert gone.status_code == 204
    page = (await client.get(f"/v1/conversations/{conv}/messages", headers=bob)).json()
    assert page["messages"][0]["deleted"] is True
    assert page["messages"][0]["parts"] == []
    last = (await client.get("/v1/events", headers=bob)).json()["events"][-1]["event"]
    assert last["type"] == "message.deleted"
    assert last["data"] == {
        "conversation_id": conv,
        "message_id": message["id"],
        "mode": "all_participants",
    }
    assert (await conversation(client, bob, conv))["unread_count"] == 0


async def test_delete_for_my_devices_hides_only_for_me(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    message = (await post(client, alice, conv, text("hide me"))).json()
    await post(client, alice, conv, text("keep"))
    hidden = await client.delete(f"/v1/messages/{message['id']}?mode=my_devices", headers=bob)
    assert hidden.status_code == 204
    assert (await bodies(client, bob, conv))[0] == ["keep"]
    assert (await bodies(client, alice, conv))[0] == ["hide me", "keep"]
    assert (await conversation(client, bob, conv))["unread_count"] == 1


@pytest.mark.parametrize("mode", ["", "?mode=all", "?mode=my_devices&mode=x"])
async def test_message_delete_needs_a_known_mode(
    client: httpx.AsyncClient, alice: Headers, conv: str, mode: str
) -> None:
    message = (await post(client, alice, conv, text("x"))).json()
    answer = await client.delete(f"/v1/messages/{message['id']}{mode}", headers=alice)
    assert answer.status_code == 422


async def test_unread_counts_others_messages_above_my_read_position(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    for body in ("a", "b", "c"):
        await post(client, alice, conv, text(body))
    assert (await conversation(client, bob, conv))["unread_count"] == 3
    assert (await conversation(client, alice, conv))["unread_count"] == 0
    await post(client, bob, conv, text("reply"))
    mine = await conversation(client, bob, conv)
    assert (mine["unread_count"], mine["read_position"], mine["delivered_position"]) == (0, 4, 4)
    theirs = await conversation(client, alice, conv)  # the merge updated alice's row too
    assert (theirs["unread_count"], theirs["read_position"]) == (1, 3)
    assert mine["last_message"]["parts"][0]["body"] == "reply"


async def test_someone_elses_message_is_404(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, conv: str, app: AppFixture
) -> None:
    message = (await post(client, alice, conv, text("private"))).json()
    carol = await bearer(client, app, "carol", server.clock.now())
    other_app = await make_app(server.services)
    stranger = await bearer(client, other_app, "alice", server.clock.now())
    for who in (carol, stranger):
        answer = await client.delete(f"/v1/messages/{message['id']}?mode=my_devices", headers=who)
        assert answer.status_code == 404
        sent = await post(client, who, conv, text("hi"))
        assert sent.status_code == 404
    bad = await client.delete("/v1/messages/not-a-uuid?mode=my_devices", headers=alice)
    assert bad.status_code == 404


async def test_concurrent_senders_get_dense_distinct_positions(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    sends = [post(client, who, conv, text(str(i))) for i in range(6) for who in (alice, bob)]
    answers = await asyncio.gather(*sends)
    assert all(a.status_code == 201 for a in answers)
    assert sorted(a.json()["position"] for a in answers) == list(range(1, 13))
    seen = await conversation(client, bob, conv)
    assert seen["last_position"] == 12
    from_alice = [a.json()["position"] for a in answers if a.json()["sender_id"] == "alice"]
    expected = sum(1 for position in from_alice if position > seen["read_position"])
    assert seen["unread_count"] == expected


@POSTGRES_ONLY
async def test_a_send_waiting_for_the_lock_while_its_sender_leaves_is_refused(
    client: httpx.AsyncClient, alice: Headers, conv: str, pg_admin: asyncpg.Connection
) -> None:
    """The send's membership is read after the conversation's lock was granted (by its
    insert, ``storage.message_send``), not from before the wait: a leave that held the
    lock and committed while the send waited must refuse it, and nothing be stored."""
    tx = pg_admin.transaction()
    await tx.start()
    conv_id = await pg_admin.fetchval(
        "SELECT id FROM conversations WHERE public_id = $1 FOR NO KEY UPDATE", conv
    )
    await pg_admin.execute(
        "UPDATE participants SET left_at = 1, left_position = 0 WHERE conversation_id = $1"
        " AND user_pk = (SELECT pk FROM users WHERE user_id = 'alice')",
        conv_id,
    )
    send = asyncio.create_task(post(client, alice, conv, text("after I left")))
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while not await pg_admin.fetchval(waiting):  # the send is queued behind the leave
        assert not send.done(), (await send).text
        await asyncio.sleep(0.01)
    await tx.commit()
    refused = await send
    assert refused.status_code == 403, refused.text
    assert await pg_admin.fetchval("SELECT count(*) FROM messages") == 0
