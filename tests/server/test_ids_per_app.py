"""Conversation and message ids are unique per app: another app's ids neither clash nor
show through (no 409 ``id_in_use`` for an id only another app uses)."""

from __future__ import annotations

import uuid

import httpx

from tests.support import AppFixture, RunningServer, bearer, make_app

Headers = dict[str, str]


def text(body: str) -> list[dict[str, str]]:
    return [{"mime_type": "text/plain", "body": body}]


async def test_two_apps_use_the_same_conversation_and_message_ids(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    other = await make_app(server.services)
    mallory = await bearer(client, other, "mallory", server.clock.now())
    conv, message = str(uuid.uuid4()), str(uuid.uuid4())
    for headers, body in ((alice, "from A"), (mallory, "from B")):
        made = await client.post(
            "/v1/conversations", json={"id": conv, "participants": ["bob"]}, headers=headers
        )
        assert made.status_code == 201, made.text
        assert made.json()["id"] == conv
        sent = await client.post(
            f"/v1/conversations/{conv}/messages",
            json={"id": message, "parts": text(body)},
            headers=headers,
        )
        assert sent.status_code == 201, sent.text
        assert (sent.json()["id"], sent.json()["conversation_id"]) == (message, conv)
    for headers, body, participants in (
        (alice, "from A", ["alice", "bob"]),
        (mallory, "from B", ["mallory", "bob"]),
    ):
        seen = (await client.get(f"/v1/conversations/{conv}", headers=headers)).json()
        assert seen["participants"] == participants
        assert seen["last_message"]["id"] == message
        assert seen["last_message"]["parts"] == text(body)
        read = await client.post(
            f"/v1/messages/{message}/receipts", json={"type": "read"}, headers=headers
        )
        assert read.status_code == 200, read.text
        events = (await client.get("/v1/events", headers=headers)).json()["events"]
        assert {e["event"]["data"].get("conversation_id", conv) for e in events} == {conv}
    deleted = await client.delete(
        f"/v1/messages/{message}", params={"mode": "all_participants"}, headers=mallory
    )
    assert deleted.status_code == 204
    kept = (await client.get(f"/v1/conversations/{conv}/messages", headers=alice)).json()
    assert kept["messages"][0]["parts"] == text("from A")


async def test_an_id_taken_in_the_same_app_is_still_409(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = str(uuid.uuid4())
    first = await client.post(
        "/v1/conversations", json={"id": conv, "participants": ["carol"]}, headers=alice
    )
    assert first.status_code == 201
    clash = await client.post(
        "/v1/conversations", json={"id": conv, "participants": ["dave"]}, headers=bob
    )
    assert (clash.status_code, clash.json()["error"]["id"]) == (409, "id_in_use")
    message = str(uuid.uuid4())
    sent = await client.post(
        f"/v1/conversations/{conv}/messages",
        json={"id": message, "parts": text("one")},
        headers=alice,
    )
    assert sent.status_code == 201
    mine = (
        await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    ).json()["id"]
    reused = await client.post(
        f"/v1/conversations/{mine}/messages",
        json={"id": message, "parts": text("one")},
        headers=alice,
    )
    assert (reused.status_code, reused.json()["error"]["id"]) == (409, "id_in_use")
