"""The platform API reads conversations and messages as every participant sees them: one
conversation, its message pages and a user's list, on a real server (SQLite and
PostgreSQL). Another app's conversation is 404 ``not_found`` like an unknown one."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import AppFixture, RunningServer, make_app, platform_key, send, start

Headers = dict[str, str]
PLATFORM: Headers = {}


@pytest.fixture(autouse=True)
async def _admin_key(server: RunningServer) -> None:
    """PLATFORM carries a real admin API key made for this test's database."""
    PLATFORM.clear()
    PLATFORM.update(await platform_key(server.services))


def base(app: AppFixture) -> str:
    return f"/v1/platform/apps/{app.app_id}"


def ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    return str(answer.json()["error"]["id"])


async def test_a_conversation_reads_as_every_participant_sees_it(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    body = {"participants": ["alice", "bob"], "metadata": {"title": "Order 7"}}
    made = await client.post(f"{base(app)}/conversations", json=body, headers=PLATFORM)
    assert made.status_code == 201, made.text
    conv = made.json()["id"]
    url = f"{base(app)}/conversations/{conv}"
    assert ok(await client.get(url, headers=PLATFORM)) == made.json()
    await send(client, alice, conv, "hello")
    shared = ok(await client.get(url, headers=PLATFORM))
    mine = ok(await client.get(f"/v1/conversations/{conv}", headers=bob))
    assert "unread_count" not in shared
    assert "read_position" not in shared
    assert shared == {k: v for k, v in mine.items() if k in shared}
    assert shared["last_message"]["parts"] == [{"mime_type": "text/plain", "body": "hello"}]
    assert shared["last_position"] == 1


async def test_an_unknown_or_foreign_conversation_is_not_found(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    """An app key naming its own app and another app's conversation id gets the answer
    an unknown id gets: ids say nothing across apps."""
    other = await make_app(server.services)
    theirs = (
        await client.post(
            f"{base(other)}/conversations", json={"participants": ["zed"]}, headers=PLATFORM
        )
    ).json()["id"]
    key = await platform_key(server.services, "app", app.app_id)
    for conv in (theirs, str(uuid.uuid4()), "not-a-uuid"):
        for path in ("", "/messages"):
            url = f"{base(app)}/conversations/{conv}{path}"
            assert refused(await client.get(url, headers=key), 404) == "not_found"
            assert refused(await client.get(url, headers=PLATFORM), 404) == "not_found"
    at_other = f"{base(other)}/conversations/{theirs}"
    assert refused(await client.get(at_other, headers=key), 404) == "app_not_found"
    assert ok(await client.get(at_other, headers=PLATFORM))["participants"] == ["zed"]
    listed = await client.get(f"{base(other)}/conversations?user_id=zed", headers=key)
    assert refused(listed, 404) == "app_not_found"


async def test_a_conversation_deleted_for_everyone_is_not_found(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    conv = await start(client, alice, "bob")
    gone = await client.delete(
        f"/v1/conversations/{conv}", params={"mode": "all_participants"}, headers=alice
    )
    assert gone.status_code == 204, gone.text
    url = f"{base(app)}/conversations/{conv}"
    assert refused(await client.get(url, headers=PLATFORM), 404) == "not_found"
    assert refused(await client.get(f"{url}/messages", headers=PLATFORM), 404) == "not_found"


async def test_an_app_key_and_an_admin_key_both_read(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    conv = await start(client, alice, "bob")
    await send(client, alice, conv, "hi")
    key = await platform_key(server.services, "app", app.app_id)
    url = f"{base(app)}/conversations/{conv}/messages"
    assert ok(await client.get(url, headers=key)) == ok(await client.get(url, headers=PLATFORM))
    assert len(ok(await client.get(url, headers=key))["messages"]) == 1


async def test_message_pages_are_the_client_apis_pages(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    conv = await start(client, alice, "bob")
    for n in range(1, 6):
        await send(client, alice if n % 2 else bob, conv, f"m{n}")
    url = f"{base(app)}/conversations/{conv}/messages"
    for params in ({}, {"limit": 2}, {"before": 4, "limit": 2}, {"after": 3}, {"after": 1}):
        shared = ok(await client.get(url, params=params, headers=PLATFORM))
        mine = ok(
            await client.get(f"/v1/conversations/{conv}/messages", params=params, headers=bob)
        )
        assert shared == mine, params
    newest = ok(await client.get(url, params={"limit": 2}, headers=PLATFORM))
    assert ([m["position"] for m in newest["messages"]], newest["has_more"]) == ([4, 5], True)
    older = ok(await client.get(url, params={"before": 4, "limit": 2}, headers=PLATFORM))
    assert ([m["position"] for m in older["messages"]], older["has_more"]) == ([2, 3], True)
    rest = ok(await client.get(url, params={"after": 3, "limit": 500}, headers=PLATFORM))
    assert ([m["position"] for m in rest["messages"]], rest["has_more"]) == ([4, 5], False)


async def test_messages_are_the_whole_conversation_not_one_users_view(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    """What one participant blocked, hid or missed by leaving is still there for the app;
    a message deleted for everyone is there as deleted, as the client API shows it."""
    conv = await start(client, alice, "bob", "carol")
    await send(client, bob, conv, "from bob")
    await send(client, alice, conv, "to delete")
    await send(client, alice, conv, "to hide")
    mine = ok(await client.get(f"/v1/conversations/{conv}/messages", headers=alice))["messages"]
    deleted, hidden = mine[1]["id"], mine[2]["id"]
    for message, mode in ((deleted, "all_participants"), (hidden, "my_devices")):
        gone = await client.delete(f"/v1/messages/{message}", params={"mode": mode}, headers=alice)
        assert gone.status_code == 204, gone.text
    blocked = await client.post("/v1/me/blocks/bob", headers=alice)
    assert blocked.status_code in (200, 201, 204), blocked.text
    left = await client.post(f"/v1/conversations/{conv}/leave", headers=alice)
    assert left.status_code == 204, left.text
    await send(client, bob, conv, "after alice left")
    seen = ok(await client.get(f"/v1/conversations/{conv}/messages", headers=alice))["messages"]
    assert [m["position"] for m in seen] == [2]  # alice's own view: blocked, hid, left
    url = f"{base(app)}/conversations/{conv}/messages"
    every = ok(await client.get(url, headers=PLATFORM))
    assert [m["position"] for m in every["messages"]] == [1, 2, 3, 4]
    assert [(m["deleted"], m["parts"]) for m in every["messages"][1:3]] == [
        (True, []),
        (False, [{"mime_type": "text/plain", "body": "to hide"}]),
    ]
    last = ok(await client.get(f"{base(app)}/conversations/{conv}", headers=PLATFORM))
    assert last["participants"] == ["bob", "carol"]
    assert last["last_message"]["parts"][0]["body"] == "after alice left"


async def test_a_users_conversations_page_as_their_own_list_does(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    for other in ("bob", "carol", "dave"):
        await send(client, alice, await start(client, alice, other), f"hi {other}")
    url = f"{base(app)}/conversations"
    first = ok(await client.get(url, params={"user_id": "alice", "limit": 2}, headers=PLATFORM))
    assert len(first["conversations"]) == 2
    assert first["next_cursor"]
    params = {"user_id": "alice", "limit": 2, "cursor": first["next_cursor"]}
    second = ok(await client.get(url, params=params, headers=PLATFORM))
    assert (len(second["conversations"]), second["next_cursor"]) == (1, None)
    listed = first["conversations"] + second["conversations"]
    own = ok(await client.get("/v1/conversations", headers=alice))["conversations"]
    assert [c["id"] for c in listed] == [c["id"] for c in own]
    assert all("unread_count" not in c for c in listed)
    for shared in listed:
        assert shared == ok(await client.get(f"{url}/{shared['id']}", headers=PLATFORM))
    bobs = ok(await client.get(url, params={"user_id": "bob"}, headers=PLATFORM))
    assert [c["participants"] for c in bobs["conversations"]] == [["alice", "bob"]]


async def test_a_user_with_no_conversations_has_an_empty_list_and_a_stranger_none(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    """An unknown user is 404 ``not_found``, as for every other ``user_id`` the platform
    API is given (blocks, senders, creators)."""
    url = f"{base(app)}/conversations"
    empty = ok(await client.get(url, params={"user_id": "alice"}, headers=PLATFORM))
    assert empty == {"conversations": [], "next_cursor": None}
    stranger = await client.get(url, params={"user_id": "ghost"}, headers=PLATFORM)
    assert refused(stranger, 404) == "not_found"


@pytest.mark.parametrize(
    ("path", "params", "prop"),
    [
        ("/messages", {"limit": 0}, "query.limit"),
        ("/messages", {"limit": 501}, "query.limit"),
        ("/messages", {"after": -1}, "query.after"),
        ("", {"user_id": "alice", "limit": 0}, "query.limit"),
        ("", {"user_id": "alice", "limit": 101}, "query.limit"),
        ("", {}, "query.user_id"),
        ("", {"user_id": "alice", "cursor": "nope"}, "cursor"),
        ("", {"user_id": "alice", "sort": "name"}, "sort"),
    ],
)
async def test_out_of_bounds_reads_are_422(
    client: httpx.AsyncClient,
    app: AppFixture,
    alice: Headers,
    path: str,
    params: dict[str, Any],
    prop: str,
) -> None:
    conv = await start(client, alice, "bob")
    url = f"{base(app)}/conversations" + (f"/{conv}{path}" if path else "")
    answer = await client.get(url, params=params, headers=PLATFORM)
    assert refused(answer, 422) == "invalid_request"
    assert answer.json()["error"]["data"]["property"] == prop


async def test_reads_write_no_audit_entry(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    conv = await start(client, alice, "bob")
    for url, params in (
        (f"{base(app)}/conversations/{conv}", {}),
        (f"{base(app)}/conversations/{conv}/messages", {}),
        (f"{base(app)}/conversations", {"user_id": "alice"}),
    ):
        ok(await client.get(url, params=params, headers=PLATFORM))
    log = ok(
        await client.get("/v1/platform/audit", params={"app_id": app.app_id}, headers=PLATFORM)
    )
    assert log["entries"] == []
