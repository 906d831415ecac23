"""Blocking: a blocked user's messages are hidden from the blocker (pages, unread counts,
the stream) and the two cannot be put into a new conversation together."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chinwag.server.settings import Settings
from tests.server.test_websocket import open_device, sign_in
from tests.support import AppFixture, RunningServer, platform_key

Headers = dict[str, str]
PLATFORM: Headers = {}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auth_rate_per_second=0)


@pytest.fixture(autouse=True)
async def _admin_key(server: RunningServer) -> None:
    """PLATFORM carries a real admin API key made for this test's database."""
    PLATFORM.clear()
    PLATFORM.update(await platform_key(server.services))


async def conversation(client: httpx.AsyncClient, headers: Headers, *others: str) -> str:
    answer = await client.post(
        "/v1/conversations", json={"participants": list(others)}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def send(client: httpx.AsyncClient, headers: Headers, cid: str, body: str) -> dict[str, Any]:
    parts = [{"mime_type": "text/plain", "body": body}]
    answer = await client.post(
        f"/v1/conversations/{cid}/messages", json={"id": str(uuid.uuid4()), "parts": parts},
        headers=headers,
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def bodies(client: httpx.AsyncClient, headers: Headers, cid: str) -> list[str]:
    page = await client.get(f"/v1/conversations/{cid}/messages", headers=headers)
    return [m["parts"][0]["body"] for m in page.json()["messages"]]


async def streamed(client: httpx.AsyncClient, headers: Headers) -> list[str]:
    answer = await client.get("/v1/events", params={"limit": 1000}, headers=headers)
    events = [item["event"] for item in answer.json()["events"]]
    cursors = [item["cursor"] for item in answer.json()["events"]]
    assert cursors == list(range(1, len(cursors) + 1)), "the stream stays dense"
    return [
        e["data"]["message"]["parts"][0]["body"] for e in events if e["type"] == "message.created"
    ]


def refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == {
        "id": "participants_blocked",
        "message": "A block between these participants prevents this conversation.",
        "data": {},
    }


async def test_a_blocked_users_messages_are_hidden_from_the_blocker_only(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    cid = await conversation(client, alice, "bob")
    await send(client, bob, cid, "before")
    assert (await client.post("/v1/me/blocks/bob", headers=alice)).status_code == 204
    hidden = await send(client, bob, cid, "after")
    await send(client, alice, cid, "mine")
    receipt = await client.post(
        f"/v1/messages/{hidden['id']}/receipts", json={"type": "read"}, headers=alice
    )
    assert receipt.status_code == 404
    assert await bodies(client, alice, cid) == ["mine"]
    assert await bodies(client, bob, cid) == ["before", "after", "mine"]
    assert await streamed(client, alice) == ["before", "mine"]
    assert await streamed(client, bob) == ["before", "after", "mine"]
    seen = (await client.get(f"/v1/conversations/{cid}", headers=alice)).json()
    assert (seen["unread_count"], seen["last_message"]["parts"][0]["body"]) == (0, "mine")
    assert (await client.delete("/v1/me/blocks/bob", headers=alice)).status_code == 204
    assert await bodies(client, alice, cid) == ["before", "after", "mine"]


async def test_blocked_users_cannot_be_put_together_whoever_blocked_whom(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    assert (await client.post("/v1/me/blocks/bob", headers=alice)).status_code == 204
    one = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    other = await client.post("/v1/conversations", json={"participants": ["alice"]}, headers=bob)
    refused(one)
    refused(other)
    platform = f"/v1/platform/apps/{app.app_id}/conversations"
    refused(await client.post(platform, json={"participants": ["alice", "bob"]}, headers=PLATFORM))
    cid = await conversation(client, bob, "carol")
    add = await client.post(
        f"/v1/conversations/{cid}/participants", json={"user_ids": ["alice"]}, headers=bob
    )
    refused(add)
    ok = await client.post(
        f"/v1/conversations/{cid}/participants", json={"user_ids": ["dave"]}, headers=bob
    )
    assert ok.status_code == 200, ok.text


async def test_blocks_are_listed_and_checked(client: httpx.AsyncClient, alice: Headers) -> None:
    for user_id in ("zed", "team/carol", "zed"):
        assert (await client.post(f"/v1/me/blocks/{user_id}", headers=alice)).status_code == 204
    listed = (await client.get("/v1/me/blocks", headers=alice)).json()["blocks"]
    assert [b["user_id"] for b in listed] == ["team/carol", "zed"]
    itself = await client.post("/v1/me/blocks/alice", headers=alice)
    assert itself.status_code == 422
    assert itself.json()["error"]["id"] == "invalid_request"
    assert (await client.post("/v1/me/blocks/zed")).status_code == 401
    assert (await client.delete("/v1/me/blocks/nobody", headers=alice)).status_code == 204


async def test_the_platform_blocks_for_a_user(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    url = f"/v1/platform/apps/{app.app_id}/blocks"
    pair = {"user_id": "alice", "blocked": "bob"}
    assert (await client.post(url, json=pair, headers=PLATFORM)).status_code == 204
    listed = await client.get(url, params={"user_id": "alice"}, headers=PLATFORM)
    assert [b["user_id"] for b in listed.json()["blocks"]] == ["bob"]
    refused(await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice))
    assert (await client.delete(url, params=pair, headers=PLATFORM)).status_code == 204
    assert (await client.get("/v1/me/blocks", headers=alice)).json() == {"blocks": []}
    ghost = {"user_id": "ghost", "blocked": "bob"}
    assert (await client.post(url, json=ghost, headers=PLATFORM)).status_code == 404
    assert (await client.post(url, json=pair, headers=alice)).status_code == 401


async def test_nothing_from_a_blocked_user_reaches_the_blockers_socket(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice, bob, carol = [
        await sign_in(client, app, user, server.clock.now()) for user in ("alice", "bob", "carol")
    ]
    cid = await conversation(client, alice.headers, "bob", "carol")
    assert (await client.post("/v1/me/blocks/bob", headers=alice.headers)).status_code == 204
    a, b, c = [await open_device(server, who.token) for who in (alice, bob, carol)]
    for device in (a, b, c):
        await device.until_caught_up()
    typing = {"conversation_id": cid, "state": "started"}
    assert (await b.request("typing.update", typing))["ok"]
    parts = [{"mime_type": "text/plain", "body": "from bob"}]
    sent = await b.request(
        "message.send", {"conversation_id": cid, "id": str(uuid.uuid4()), "parts": parts}
    )
    assert sent["ok"], sent
    await c.until_cursor(c.hello["head"] + 1)
    assert (await c.until_signal(1))["data"]["user_id"] == "bob"
    assert (await c.request("typing.update", typing))["ok"]
    await send(client, carol.headers, cid, "from carol")
    assert (await a.until_signal(1))["data"]["user_id"] == "carol"
    await a.until_cursor(a.hello["head"] + 1)
    assert [e["data"]["message"]["parts"][0]["body"] for e in a.events] == ["from carol"]
    for device in (a, b, c):
        await device.ws.close()
