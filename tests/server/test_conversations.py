"""Conversations over REST: creation, distinct semantics, metadata, participants, listing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.support import AppFixture, RunningServer, bearer, make_app

Headers = dict[str, str]


async def create(client: httpx.AsyncClient, headers: Headers, **body: Any) -> httpx.Response:
    return await client.post("/v1/conversations", json=body, headers=headers)


async def event_types(client: httpx.AsyncClient, headers: Headers) -> list[str]:
    answer = await client.get("/v1/events", headers=headers)
    assert answer.status_code == 200, answer.text
    return [e["event"]["type"] for e in answer.json()["events"]]


async def send(client: httpx.AsyncClient, headers: Headers, conv: str, text: str) -> Any:
    body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": text}]}
    answer = await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_create_adds_the_creator_and_creates_unknown_users(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    made = await create(client, alice, participants=["bob", "carol"], metadata={"title": "hi"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["participants"] == ["alice", "bob", "carol"]
    assert body["created_by"] == "alice"
    assert body["metadata"] == {"title": "hi"}
    assert body["distinct"] is False
    assert body["last_message"] is None
    assert (body["unread_count"], body["read_position"], body["left"]) == (0, 0, False)
    seen = await client.get(f"/v1/conversations/{body['id']}", headers=bob)
    assert seen.status_code == 200
    assert seen.json()["participants"] == ["alice", "bob", "carol"]
    assert await event_types(client, bob) == ["conversation.created"]


async def test_client_chosen_id_is_used_and_a_repeat_is_idempotent(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    chosen = str(uuid.uuid4())
    first = await create(client, alice, participants=["bob"], id=chosen)
    assert first.status_code == 201
    assert first.json()["id"] == chosen
    again = await create(client, alice, participants=["bob"], id=chosen)
    assert again.status_code == 200
    other = await create(client, alice, participants=["carol"], id=chosen)
    assert other.status_code == 409
    assert other.json()["error"]["id"] == "id_in_use"


async def test_distinct_create_returns_the_existing_conversation(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    first = await create(client, alice, participants=["bob"], distinct=True)
    assert first.status_code == 201
    second = await create(client, bob, participants=["alice"], distinct=True)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["location"] == f"/v1/conversations/{first.json()['id']}"


async def test_distinct_create_with_other_metadata_conflicts_with_the_existing(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    first = await create(client, alice, participants=["bob"], distinct=True, metadata={"t": "a"})
    same = await create(client, alice, participants=["bob"], distinct=True, metadata={"t": "a"})
    assert same.status_code == 200
    clash = await create(client, alice, participants=["bob"], distinct=True, metadata={"t": "b"})
    assert clash.status_code == 409
    error = clash.json()["error"]
    assert error["id"] == "conflict"
    assert error["data"]["id"] == first.json()["id"]
    assert error["data"]["metadata"] == {"t": "a"}


async def test_concurrent_distinct_creates_end_with_one_conversation(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    answers = await asyncio.gather(
        *(create(client, alice, participants=["bob", "newcomer"], distinct=True) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    listed = await client.get("/v1/conversations", headers=alice)
    assert len(listed.json()["conversations"]) == 1


async def test_a_never_participant_gets_404(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["carol"])).json()["id"]
    for answer in (
        await client.get(f"/v1/conversations/{conv}", headers=bob),
        await client.get(f"/v1/conversations/{conv}/messages", headers=bob),
        await client.post(f"/v1/conversations/{conv}/leave", headers=bob),
        await client.patch(
            f"/v1/conversations/{conv}", json={"metadata": {"set": {"a": "b"}}}, headers=bob
        ),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["id"] == "not_found"


async def test_another_apps_user_with_the_same_id_sees_nothing(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    other_app = await make_app(server.services)
    other_bob = await bearer(client, other_app, "bob", server.clock.now())
    assert (await client.get(f"/v1/conversations/{conv}", headers=other_bob)).status_code == 404
    listed = await client.get("/v1/conversations", headers=other_bob)
    assert listed.json()["conversations"] == []
    other_alice = await bearer(client, other_app, "alice", server.clock.now())
    assert (await client.get(f"/v1/conversations/{conv}", headers=other_alice)).status_code == 404


@pytest.mark.parametrize("bad", ["not-a-uuid", "0" * 36, "%00", "A" * 300])
async def test_malformed_conversation_ids_are_404(
    client: httpx.AsyncClient, alice: Headers, bad: str
) -> None:
    answer = await client.get(f"/v1/conversations/{bad}", headers=alice)
    assert answer.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"participants": "bob"},
        {"participants": [1, 2]},
        {"participants": ["bad\x00id"]},
        {"participants": ["x" * 257]},
        {"participants": ["bob"], "distinct": "yes"},
        {"participants": ["bob"], "metadata": {"n": 1}},
        {"participants": ["bob"], "metadata": {"a.b": "c"}},
        {"participants": ["bob"], "metadata": {"a": ["list"]}},
        {"participants": ["bob"], "metadata": []},
        {"participants": ["bob"], "id": "not-a-uuid"},
        {"participants": ["bob"], "id": 5},
        {},
    ],
)
async def test_bad_create_bodies_are_422(
    client: httpx.AsyncClient, alice: Headers, body: dict[str, Any]
) -> None:
    answer = await create(client, alice, **body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["id"] == "invalid_request"


async def test_lone_surrogates_in_metadata_are_422(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    raw = b'{"participants": ["bob"], "metadata": {"a": "\\ud800"}}'
    headers = {**alice, "Content-Type": "application/json"}
    answer = await client.post("/v1/conversations", content=raw, headers=headers)
    assert answer.status_code == 422, answer.text


async def test_more_than_max_participants_is_refused(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    names = [f"user{i}" for i in range(1000)]
    answer = await create(client, alice, participants=names)
    assert answer.status_code == 422
    assert answer.json()["error"]["data"]["property"] == "participants"


async def test_metadata_patch_sets_and_deletes_dotted_paths(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    made = await create(client, alice, participants=["bob"], metadata={"a": {"b": "c"}, "d": "e"})
    conv = made.json()["id"]
    patch = {"metadata": {"set": {"a.x": "y", "n.m": "o"}, "delete": ["d", "a.b", "no.such"]}}
    answer = await client.patch(f"/v1/conversations/{conv}", json=patch, headers=bob)
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {"a": {"x": "y"}, "n": {"m": "o"}}
    assert (await event_types(client, alice))[-1] == "conversation.updated"


@pytest.mark.parametrize(
    "patch",
    [
        {"set": {"t.deeper": "x"}},
        {"set": {"a..b": "x"}},
        {"set": {"a": 1}},
        {"delete": "t"},
        {"replace": {}},
        "text",
    ],
)
async def test_bad_metadata_patches_are_422(
    client: httpx.AsyncClient, alice: Headers, patch: Any
) -> None:
    conv = (await create(client, alice, participants=[], metadata={"t": "s"})).json()["id"]
    answer = await client.patch(
        f"/v1/conversations/{conv}", json={"metadata": patch}, headers=alice
    )
    assert answer.status_code == 422, answer.text


async def test_adding_participants_makes_a_distinct_conversation_non_distinct(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, server: RunningServer, app: AppFixture
) -> None:
    conv = (await create(client, alice, participants=["bob"], distinct=True)).json()["id"]
    added = await client.post(
        f"/v1/conversations/{conv}/participants", json={"user_ids": ["carol"]}, headers=alice
    )
    assert added.status_code == 200, added.text
    assert added.json()["distinct"] is False
    assert added.json()["participants"] == ["alice", "bob", "carol"]
    assert (await event_types(client, bob))[-1] == "conversation.participants_added"
    carol = await bearer(client, app, "carol", server.clock.now())
    assert await event_types(client, carol) == ["conversation.created"]
    fresh = await create(client, alice, participants=["bob"], distinct=True)
    assert fresh.status_code == 201


async def test_removed_participant_is_told_and_keeps_only_earlier_history(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    await send(client, alice, conv, "before")
    removed = await client.delete(f"/v1/conversations/{conv}/participants/bob", headers=alice)
    assert removed.status_code == 204
    await send(client, alice, conv, "after")
    types = await event_types(client, bob)
    assert types[-1] == "conversation.left"
    seen = await client.get(f"/v1/conversations/{conv}", headers=bob)
    assert seen.status_code == 200
    assert seen.json()["left"] is True
    assert seen.json()["last_position"] == 1
    history = await client.get(f"/v1/conversations/{conv}/messages", headers=bob)
    assert [m["parts"][0]["body"] for m in history.json()["messages"]] == ["before"]
    body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x"}]}
    denied = await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=bob)
    assert denied.status_code == 403
    assert denied.json()["error"]["id"] == "access_denied"


async def test_removing_someone_who_is_not_a_participant_is_404(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    answer = await client.delete(f"/v1/conversations/{conv}/participants/zed", headers=alice)
    assert answer.status_code == 404


async def test_leaving_then_writing_is_403_and_others_are_told(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    assert (await client.post(f"/v1/conversations/{conv}/leave", headers=bob)).status_code == 204
    assert (await event_types(client, alice))[-1] == "conversation.participants_removed"
    again = await client.post(f"/v1/conversations/{conv}/leave", headers=bob)
    assert again.status_code == 403
    view = await client.get(f"/v1/conversations/{conv}", headers=alice)
    assert view.json()["participants"] == ["alice"]


async def test_delete_for_all_participants_removes_it_for_everyone(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"], distinct=True)).json()["id"]
    gone = await client.delete(f"/v1/conversations/{conv}?mode=all_participants", headers=bob)
    assert gone.status_code == 204
    assert (await client.get(f"/v1/conversations/{conv}", headers=alice)).status_code == 404
    assert (await event_types(client, alice))[-1] == "conversation.deleted"
    again = await create(client, alice, participants=["bob"], distinct=True)
    assert again.status_code == 201


async def test_delete_needs_a_known_mode(client: httpx.AsyncClient, alice: Headers) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    assert (await client.delete(f"/v1/conversations/{conv}", headers=alice)).status_code == 422
    odd = await client.delete(f"/v1/conversations/{conv}?mode=everything", headers=alice)
    assert odd.status_code == 422


async def test_delete_for_my_devices_hides_history_until_new_messages(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    await send(client, alice, conv, "one")
    hidden = await client.delete(f"/v1/conversations/{conv}?mode=my_devices", headers=bob)
    assert hidden.status_code == 204
    assert (await client.get("/v1/conversations", headers=bob)).json()["conversations"] == []
    still = await client.get(f"/v1/conversations/{conv}/messages", headers=alice)
    assert len(still.json()["messages"]) == 1
    await send(client, alice, conv, "two")
    listed = (await client.get("/v1/conversations", headers=bob)).json()["conversations"]
    assert [c["id"] for c in listed] == [conv]
    assert listed[0]["unread_count"] == 1
    mine = await client.get(f"/v1/conversations/{conv}/messages", headers=bob)
    assert [m["parts"][0]["body"] for m in mine.json()["messages"]] == ["two"]


async def test_listing_pages_by_last_message_with_a_cursor(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers
) -> None:
    ids = [(await create(client, alice, participants=[f"p{i}"])).json()["id"] for i in range(5)]
    server.clock.advance(1)
    await send(client, alice, ids[1], "bump")
    seen: list[str] = []
    cursor = None
    while True:
        query = "/v1/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=alice)).json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[0] == ids[1]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5


async def test_a_listing_page_stops_at_a_mebibyte_and_paging_on_loses_nothing(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers
) -> None:
    """Each conversation may carry a 64 KiB last message (and 16 KiB of metadata and 1,000
    participants): 100 to a page were up to ~9 MB held and rendered at once."""
    ids = []
    for i in range(20):
        server.clock.advance(1)
        conv = (await create(client, alice, participants=[f"p{i}"])).json()["id"]
        await send(client, alice, conv, f"{i:02d}" + "x" * 60_000)
        ids.append(conv)
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = "/v1/conversations?limit=100" + (f"&cursor={cursor}" if cursor else "")
        answer = await client.get(query, headers=alice)
        assert answer.status_code == 200, answer.text[:200]
        assert len(answer.content) <= 1024 * 1024 + 100  # the list's own braces besides
        pages.append([c["id"] for c in answer.json()["conversations"]])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert len(pages) == 2  # 20 x 60 KB: the bound cut the first page
    assert [c for page in pages for c in page] == ids[::-1]


async def test_listing_by_created_at_is_newest_first(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers
) -> None:
    ids = []
    for i in range(3):
        server.clock.advance(1)
        ids.append((await create(client, alice, participants=[f"p{i}"])).json()["id"])
    await send(client, alice, ids[0], "bump")
    page = (await client.get("/v1/conversations?sort=created_at", headers=alice)).json()
    assert [c["id"] for c in page["conversations"]] == ids[::-1]


@pytest.mark.parametrize(
    "query", ["sort=oldest", "limit=0", "limit=101", "cursor=garbage", "cursor=WzEsMiwzXQ"]
)
async def test_bad_listing_queries_are_422(
    client: httpx.AsyncClient, alice: Headers, query: str
) -> None:
    answer = await client.get(f"/v1/conversations?{query}", headers=alice)
    assert answer.status_code == 422, answer.text


async def test_listing_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/conversations")
    assert answer.status_code == 401
