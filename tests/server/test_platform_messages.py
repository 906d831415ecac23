"""The platform API's server-side messages: conversations for users, sends as a user or a
bot, and announcements, on a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chinwag.server.handlers import apps as app_handlers
from chinwag.server.settings import Settings
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


def base(app: AppFixture) -> str:
    return f"/v1/platform/apps/{app.app_id}"


def text(body: str) -> list[dict[str, str]]:
    return [{"mime_type": "text/plain", "body": body}]


async def events_of(client: httpx.AsyncClient, headers: Headers) -> list[dict[str, Any]]:
    answer = await client.get("/v1/events", params={"after": 0, "limit": 1000}, headers=headers)
    assert answer.status_code == 200, answer.text
    return [item["event"] for item in answer.json()["events"]]


async def test_only_the_api_key_opens_the_platform_api(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    body = {"participants": ["alice", "bob"]}
    url = f"{base(app)}/conversations"
    for headers in ({}, alice, {"Authorization": "Bearer cwk_wrong"}):
        answer = await client.post(url, json=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["id"] == "authentication_required"
    assert (await client.get("/v1/conversations", headers=PLATFORM)).status_code == 401
    missing = f"/v1/platform/apps/{uuid.uuid4()}/conversations"
    answer = await client.post(missing, json=body, headers=PLATFORM)
    assert answer.status_code == 404
    assert answer.json()["error"]["id"] == "app_not_found"


async def test_the_app_creates_a_conversation_for_its_users(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    body = {"participants": ["alice", "bob"], "distinct": True, "metadata": {"title": "Order 7"}}
    answer = await client.post(f"{base(app)}/conversations", json=body, headers=PLATFORM)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["created_by"] is None
    assert sorted(made["participants"]) == ["alice", "bob"]
    again = await client.post(f"{base(app)}/conversations", json=body, headers=PLATFORM)
    assert again.status_code == 200
    assert again.json()["id"] == made["id"]
    mine = await client.get(f"/v1/conversations/{made['id']}", headers=alice)
    assert mine.status_code == 200
    assert mine.json()["metadata"] == {"title": "Order 7"}
    created = [e for e in await events_of(client, alice) if e["type"] == "conversation.created"]
    assert [e["data"]["conversation"]["id"] for e in created] == [made["id"]]


async def test_creating_as_a_user_names_them_and_follows_the_policy(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    url = f"{base(app)}/conversations"
    answer = await client.post(
        url, json={"participants": ["bob"], "created_by": "alice"}, headers=PLATFORM
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["created_by"] == "alice"
    assert "unread_count" not in answer.json()
    await app_handlers.update_app(server.services, app.app_id, conversation_policy="existing_users")
    as_alice = {"participants": ["nobody"], "created_by": "alice"}
    refused = await client.post(url, json=as_alice, headers=PLATFORM)
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "participants_not_allowed"
    unknown = {"participants": ["bob"], "created_by": "ghost"}
    assert (await client.post(url, json=unknown, headers=PLATFORM)).status_code == 404


async def test_a_bot_sends_messages_marked_as_a_bot(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    bot = {"user_id": "helpbot", "display_name": "Help"}
    made = await client.post(f"{base(app)}/bots", json=bot, headers=PLATFORM)
    assert made.status_code == 201, made.text
    assert made.json()["bot"] is True
    again = await client.post(
        f"{base(app)}/bots", json={**bot, "display_name": "Helper"}, headers=PLATFORM
    )
    assert (again.status_code, again.json()["display_name"]) == (200, "Helper")
    person = await client.post(f"{base(app)}/bots", json={"user_id": "alice"}, headers=PLATFORM)
    assert person.status_code == 409
    assert person.json()["error"]["id"] == "id_in_use"
    conv = await client.post(
        f"{base(app)}/conversations", json={"participants": ["alice", "helpbot"]}, headers=PLATFORM
    )
    url = f"{base(app)}/conversations/{conv.json()['id']}/messages"
    send = {"id": str(uuid.uuid4()), "sender_id": "helpbot", "parts": text("How can I help?")}
    sent = await client.post(url, json=send, headers=PLATFORM)
    assert sent.status_code == 201, sent.text
    assert (sent.json()["sender_id"], sent.json()["bot"]) == ("helpbot", True)
    assert (await client.post(url, json=send, headers=PLATFORM)).status_code == 200
    changed = await client.post(url, json={**send, "parts": text("other")}, headers=PLATFORM)
    assert changed.status_code == 409
    page = await client.get(f"/v1/conversations/{conv.json()['id']}/messages", headers=alice)
    assert [(m["sender_id"], m["bot"]) for m in page.json()["messages"]] == [("helpbot", True)]
    profile = await client.get("/v1/users/helpbot", headers=alice)
    assert profile.json()["bot"] is True
    me = await client.get("/v1/me", headers=alice)
    assert me.json()["user"]["bot"] is False


async def test_creating_a_bot_again_changes_only_the_fields_given(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    """A backend that only sets the avatar must not wipe the name it set before."""
    url = f"{base(app)}/bots"
    bot = {"user_id": "newbot", "display_name": "New"}
    assert (await client.post(url, json=bot, headers=PLATFORM)).status_code == 201
    avatar = {"user_id": "newbot", "avatar_url": "https://example.com/a.png"}
    again = await client.post(url, json=avatar, headers=PLATFORM)
    assert again.status_code == 200, again.text
    assert (again.json()["display_name"], again.json()["avatar_url"]) == (
        "New",
        "https://example.com/a.png",
    )
    cleared = await client.post(url, json={**avatar, "display_name": None}, headers=PLATFORM)
    assert (cleared.json()["display_name"], cleared.json()["avatar_url"]) == (
        None,
        "https://example.com/a.png",
    )


async def test_a_bot_profile_with_control_characters_is_refused_as_a_persons_is(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    url = f"{base(app)}/bots"
    for field, value in (("display_name", "Help\nBot"), ("display_name", "\x1b[31mred")):
        refused = await client.post(url, json={"user_id": "ctlbot", field: value}, headers=PLATFORM)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["data"]["property"] == field, refused.text
    made = await client.post(
        url, json={"user_id": "ctlbot", "display_name": "Help"}, headers=PLATFORM
    )
    assert made.status_code == 201
    again = await client.post(
        url, json={"user_id": "ctlbot", "display_name": "a\x00b"}, headers=PLATFORM
    )
    assert again.status_code == 422


async def test_a_bots_new_profile_reaches_those_who_share_a_conversation_with_it(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    """As a person's profile change does: else alice's device shows the old name."""
    url = f"{base(app)}/bots"
    bot = {"user_id": "helpbot", "display_name": "Help"}
    assert (await client.post(url, json=bot, headers=PLATFORM)).status_code == 201
    await client.post(
        f"{base(app)}/conversations", json={"participants": ["alice", "helpbot"]}, headers=PLATFORM
    )
    same = await client.post(url, json=bot, headers=PLATFORM)
    assert same.status_code == 200, same.text
    changed = {**bot, "display_name": "Helper", "avatar_url": "https://example.com/h.png"}
    assert (await client.post(url, json=changed, headers=PLATFORM)).status_code == 200
    updates = [e for e in await events_of(client, alice) if e["type"] == "identity.updated"]
    assert [e["data"]["user"] for e in updates] == [
        {
            "user_id": "helpbot",
            "display_name": "Helper",
            "avatar_url": "https://example.com/h.png",
            "anonymous": False,
            "bot": True,
        }
    ]
    assert not [e for e in await events_of(client, bob) if e["type"] == "identity.updated"]


async def test_only_a_participant_can_be_sent_as(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    conv = await client.post(
        f"{base(app)}/conversations", json={"participants": ["alice"]}, headers=PLATFORM
    )
    url = f"{base(app)}/conversations/{conv.json()['id']}/messages"
    send = {"id": str(uuid.uuid4()), "sender_id": "bob", "parts": text("hi")}
    assert (await client.post(url, json=send, headers=PLATFORM)).status_code == 404
    as_alice = await client.post(url, json={**send, "sender_id": "alice"}, headers=PLATFORM)
    assert as_alice.status_code == 201
    assert as_alice.json()["bot"] is False


async def test_an_announcement_reaches_each_known_user_once(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    body = {"id": str(uuid.uuid4()), "user_ids": ["alice", "bob", "ghost"], "parts": text("Hi")}
    made = await client.post(f"{base(app)}/announcements", json=body, headers=PLATFORM)
    assert made.status_code == 201, made.text
    assert made.json()["recipient_count"] == 2
    retry = await client.post(f"{base(app)}/announcements", json=body, headers=PLATFORM)
    assert retry.status_code == 200
    assert retry.json() == made.json()
    for headers in (alice, bob):
        found = [e for e in await events_of(client, headers) if e["type"] == "announcement.created"]
        assert [e["data"]["announcement"] for e in found] == [
            {"id": body["id"], "parts": text("Hi"), "sent_at": made.json()["sent_at"]}
        ]
    other = await client.post(
        f"{base(app)}/announcements", json={**body, "parts": text("Bye")}, headers=PLATFORM
    )
    assert other.status_code == 409
    assert other.json()["error"]["id"] == "id_in_use"


async def test_an_announcement_is_bounded(client: httpx.AsyncClient, app: AppFixture) -> None:
    url = f"{base(app)}/announcements"
    many = {"id": str(uuid.uuid4()), "user_ids": [f"u{i}" for i in range(1001)], "parts": text("x")}
    assert (await client.post(url, json=many, headers=PLATFORM)).status_code == 422
    none = {**many, "user_ids": []}
    assert (await client.post(url, json=none, headers=PLATFORM)).status_code == 422
    bad_id = {**many, "id": "not-a-uuid", "user_ids": ["alice"]}
    assert (await client.post(url, json=bad_id, headers=PLATFORM)).status_code == 422
    huge = {**many, "user_ids": ["alice"], "parts": text("x" * 300_000)}
    answer = await client.post(url, json=huge, headers=PLATFORM)
    assert answer.status_code == 413
    assert answer.json()["error"]["id"] == "payload_too_large"
    large = {**many, "user_ids": ["alice"], "parts": text("x" * 70_000)}
    answer = await client.post(url, json=large, headers=PLATFORM)
    assert answer.json()["error"]["id"] == "message_too_large"


async def test_every_change_is_audited_without_bodies(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    await client.post(f"{base(app)}/bots", json={"user_id": "helpbot"}, headers=PLATFORM)
    conv = await client.post(
        f"{base(app)}/conversations", json={"participants": ["helpbot"]}, headers=PLATFORM
    )
    send = {"id": str(uuid.uuid4()), "sender_id": "helpbot", "parts": text("secret body")}
    url = f"{base(app)}/conversations/{conv.json()['id']}/messages"
    await client.post(url, json=send, headers=PLATFORM)
    await client.post(url, json=send, headers=PLATFORM)  # a retry changes nothing
    note = {"id": str(uuid.uuid4()), "user_ids": ["helpbot"], "parts": text("secret note")}
    await client.post(f"{base(app)}/announcements", json=note, headers=PLATFORM)
    pair = {"user_id": "helpbot", "blocked": "spam"}
    await client.post(f"{base(app)}/blocks", json=pair, headers=PLATFORM)
    await client.delete(f"{base(app)}/blocks", params=pair, headers=PLATFORM)
    log = await client.get("/v1/platform/audit", params={"app_id": app.app_id}, headers=PLATFORM)
    assert log.status_code == 200, log.text
    entries = log.json()["entries"][::-1]  # newest first
    assert [entry["action"] for entry in entries] == [
        "bot.put",
        "conversation.create",
        "message.send",
        "announcement.create",
        "block.add",
        "block.remove",
    ]
    assert all(entry["target"].startswith(f"apps/{app.app_id}/") for entry in entries)
    assert "secret" not in log.text
    assert PLATFORM["Authorization"].split()[1] not in log.text


async def test_blocks_by_user_ids_with_slashes_never_shadow_a_user(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    """User ids may contain "/": blocks take both ids as data, so the user "team/blocks"
    is still a user and "team/ann"'s blocks are hers."""
    for user in ("team/ann", "team/blocks"):
        await client.post(f"{base(app)}/bots", json={"user_id": user}, headers=PLATFORM)
    pair = {"user_id": "team/ann", "blocked": "spam/bot"}
    assert (
        await client.post(f"{base(app)}/blocks", json=pair, headers=PLATFORM)
    ).status_code == 204
    listed = await client.get(
        f"{base(app)}/blocks", params={"user_id": "team/ann"}, headers=PLATFORM
    )
    assert listed.status_code == 200, listed.text
    assert [b["user_id"] for b in listed.json()["blocks"]] == ["spam/bot"]
    shown = await client.get(f"{base(app)}/users/team/blocks", headers=PLATFORM)
    assert shown.status_code == 200, shown.text
    assert shown.json()["user_id"] == "team/blocks"
    lifted = await client.delete(f"{base(app)}/blocks", params=pair, headers=PLATFORM)
    assert lifted.status_code == 204
    listed = await client.get(
        f"{base(app)}/blocks", params={"user_id": "team/ann"}, headers=PLATFORM
    )
    assert listed.json()["blocks"] == []
    missing = await client.get(f"{base(app)}/blocks", headers=PLATFORM)
    assert missing.status_code == 422
    assert missing.json()["error"]["id"] == "invalid_request"
