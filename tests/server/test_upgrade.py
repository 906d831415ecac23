"""Anonymous → identified: keep moves the anonymous user's conversations, discard leaves them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from tests.support import AppFixture, RunningServer, get_nonce, login, make_app

Headers = dict[str, str]


def bearer(session: dict[str, Any]) -> Headers:
    return {"Authorization": f"Bearer {session['session_token']}"}


async def anonymous(client: httpx.AsyncClient, app: AppFixture) -> dict[str, Any]:
    answer = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def sign_in(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    user_id: str,
    headers: Headers,
    **extra: Any,
) -> httpx.Response:
    nonce = await get_nonce(client, app.app_id)
    token = app.token({"sub": user_id, "nce": nonce, "iat": int(server.clock.now())})
    body = {"app_id": app.app_id, "identity_token": token, **extra}
    return await client.post("/v1/sessions", json=body, headers=headers)


async def stream_types(server: RunningServer, app_id: str, user_id: str) -> list[Any]:
    async with server.services.db.read() as conn:
        user = await user_store.get_user(conn, app_id, user_id)
        assert user is not None
        found = await event_store.read_stream(conn, user.pk, after=0, limit=100)
    return [json.loads(e.event_json) for e in found]


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services, allow_anonymous=True)


@pytest.fixture
async def anon_conv(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> tuple[dict[str, Any], str]:
    """An anonymous user in a conversation with bob, having sent one message."""
    anon = await anonymous(client, app)
    made = await client.post(
        "/v1/conversations", json={"participants": ["bob"]}, headers=bearer(anon)
    )
    conv = made.json()["id"]
    body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "hi"}]}
    sent = await client.post(f"/v1/conversations/{conv}/messages", json=body, headers=bearer(anon))
    assert sent.status_code == 201
    return anon, conv


async def test_keep_moves_conversations_and_messages_to_the_identified_user(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    anon_conv: tuple[dict[str, Any], str],
) -> None:
    anon, conv = anon_conv
    answer = await sign_in(server, client, app, "alice", bearer(anon))
    assert answer.status_code == 201, answer.text
    alice = bearer(answer.json())
    seen = await client.get(f"/v1/conversations/{conv}", headers=alice)
    assert seen.status_code == 200
    assert sorted(seen.json()["participants"]) == ["alice", "bob"]
    assert seen.json()["created_by"] == "alice"
    assert seen.json()["read_position"] == 1
    page = (await client.get(f"/v1/conversations/{conv}/messages", headers=alice)).json()
    assert page["messages"][0]["sender_id"] == "alice"
    events = (await client.get("/v1/events", headers=alice)).json()["events"]
    assert [e["event"]["type"] for e in events] == ["conversation.created"]
    assert (await client.get("/v1/me", headers=bearer(anon))).status_code == 401
    anon_events = await stream_types(server, app.app_id, anon["user"]["user_id"])
    assert [e["type"] for e in anon_events][-2:] == ["session.revoked", "user.upgraded"]
    assert anon_events[-2]["data"]["reason"] == "upgraded"
    assert anon_events[-1]["data"] == {
        "from_user_id": anon["user"]["user_id"],
        "to_user_id": "alice",
        "anonymous_data": "keep",
    }


async def test_keep_merges_into_a_conversation_the_user_is_already_in(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice_first = bearer(await login(client, app, "alice", server.clock.now()))
    made = await client.post(
        "/v1/conversations", json={"participants": ["bob"]}, headers=alice_first
    )
    conv = made.json()["id"]
    anon = await anonymous(client, app)
    bob = bearer(await login(client, app, "bob", server.clock.now()))
    added = await client.post(
        f"/v1/conversations/{conv}/participants",
        json={"user_ids": [anon["user"]["user_id"]]},
        headers=bob,
    )
    assert added.status_code == 200
    answer = await sign_in(server, client, app, "alice", bearer(anon))
    assert answer.status_code == 201
    seen = await client.get(f"/v1/conversations/{conv}", headers=bearer(answer.json()))
    assert sorted(seen.json()["participants"]) == ["alice", "bob"]


async def test_discard_leaves_the_anonymous_users_conversations(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    anon_conv: tuple[dict[str, Any], str],
) -> None:
    anon, conv = anon_conv
    answer = await sign_in(server, client, app, "alice", bearer(anon), anonymous_data="discard")
    assert answer.status_code == 201
    alice = bearer(answer.json())
    assert (await client.get(f"/v1/conversations/{conv}", headers=alice)).status_code == 404
    assert (await client.get("/v1/events", headers=alice)).json()["events"] == []
    bob = bearer(await login(client, app, "bob", server.clock.now()))
    seen = (await client.get(f"/v1/conversations/{conv}", headers=bob)).json()
    assert seen["participants"] == ["bob"]
    anon_events = await stream_types(server, app.app_id, anon["user"]["user_id"])
    assert [e["type"] for e in anon_events][-3:] == [
        "conversation.left",
        "session.revoked",
        "user.upgraded",
    ]


async def test_a_non_anonymous_bearer_token_is_ignored(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    bob = bearer(await login(client, app, "bob", server.clock.now()))
    answer = await sign_in(server, client, app, "alice", bob)
    assert answer.status_code == 201
    assert answer.json()["user"]["user_id"] == "alice"
    assert (await client.get("/v1/me", headers=bob)).status_code == 200


async def test_an_anonymous_session_of_another_app_is_ignored(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    other = await make_app(server.services, allow_anonymous=True)
    anon = await anonymous(client, other)
    answer = await sign_in(server, client, app, "alice", bearer(anon))
    assert answer.status_code == 201
    assert (await client.get("/v1/me", headers=bearer(anon))).status_code == 200


async def test_a_failed_sign_in_leaves_the_anonymous_session_alone(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    anon_conv: tuple[dict[str, Any], str],
) -> None:
    anon, conv = anon_conv
    body = {"app_id": app.app_id, "identity_token": "not.a.token"}
    answer = await client.post("/v1/sessions", json=body, headers=bearer(anon))
    assert answer.status_code == 401
    assert (await client.get(f"/v1/conversations/{conv}", headers=bearer(anon))).status_code == 200


async def test_an_unknown_anonymous_data_value_is_422(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    anon = await anonymous(client, app)
    answer = await sign_in(server, client, app, "alice", bearer(anon), anonymous_data="merge")
    assert answer.status_code == 422
    assert (await client.get("/v1/me", headers=bearer(anon))).status_code == 200


async def test_concurrent_upgrades_with_one_anonymous_token_move_data_once(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    anon_conv: tuple[dict[str, Any], str],
) -> None:
    anon, conv = anon_conv
    answers = await asyncio.gather(
        sign_in(server, client, app, "alice", bearer(anon)),
        sign_in(server, client, app, "carol", bearer(anon)),
    )
    assert [a.status_code for a in answers] == [201, 201]
    owners = []
    for answer in answers:
        seen = await client.get(f"/v1/conversations/{conv}", headers=bearer(answer.json()))
        if seen.status_code == 200:
            owners.append(answer.json()["user"]["user_id"])
    assert len(owners) == 1
    anon_events = await stream_types(server, app.app_id, anon["user"]["user_id"])
    assert [e["type"] for e in anon_events].count("user.upgraded") == 1
