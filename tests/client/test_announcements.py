"""The SDK and the platform API's server-side messages: announcements are stored once and
emitted once; a bot's messages say so (``Message.bot``)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chinwag.client import Announcement, Client, ClientEvent, Message, MessagePart
from chinwag.client.store import Store
from chinwag.server.settings import Settings
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in
from tests.support import AppFixture, RunningServer, platform_key


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auth_rate_per_second=0)


async def platform(
    server: RunningServer, app: AppFixture, path: str, body: object
) -> httpx.Response:
    url = f"{server.url}/v1/platform/apps/{app.app_id}{path}"
    key = await platform_key(server.services, "app", app.app_id)
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, json=body, headers=key)
    assert answer.status_code in (200, 201), answer.text
    return answer


async def test_an_announcement_is_stored_and_emitted_once_per_device(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer, app: AppFixture
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    seen: list[object] = []
    alice.on(ClientEvent.ANNOUNCEMENT, seen.append)
    try:
        note_id = str(uuid.uuid4())
        note = {
            "id": note_id,
            "user_ids": ["alice"],
            "parts": [{"mime_type": "text/plain", "body": "Maintenance at 02:00"}],
        }
        sent_at = (await platform(server, app, "/announcements", note)).json()["sent_at"]
        await eventually(lambda: _count(seen, 1))
        expected = Announcement(
            note_id, (MessagePart("text/plain", "Maintenance at 02:00"),), sent_at
        )
        assert seen == [expected]
        assert await alice.announcements() == [expected]
        assert alice._store is not None
        await alice._store.set_meta("cursor", "0")  # replay the whole stream
        await alice.sync_now()
        assert seen == [expected]
        assert await alice.announcements() == [expected]
    finally:
        await alice.close()


async def test_a_bots_message_is_marked_on_the_device(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer, app: AppFixture
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    arrived: list[object] = []
    alice.on(ClientEvent.MESSAGE, arrived.append)
    try:
        await platform(server, app, "/bots", {"user_id": "helpbot", "display_name": "Help"})
        conv = await platform(server, app, "/conversations", {"participants": ["alice", "helpbot"]})
        cid = conv.json()["id"]
        send = {
            "id": str(uuid.uuid4()),
            "sender_id": "helpbot",
            "parts": [{"mime_type": "text/plain", "body": "beep"}],
        }
        await platform(server, app, f"/conversations/{cid}/messages", send)
        await eventually(lambda: _count(arrived, 1))
        message = arrived[0]
        assert isinstance(message, Message)
        assert (message.sender_id, message.bot) == ("helpbot", True)
        stored = await alice.messages(cid)
        assert [(m.text, m.bot) for m in stored] == [("beep", True)]
    finally:
        await alice.close()


async def test_a_store_from_an_older_sdk_gains_the_bot_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,"
            " position INTEGER, sender_id TEXT NOT NULL, parts TEXT NOT NULL, sent_at REAL,"
            " state TEXT NOT NULL DEFAULT 'sent', deleted INTEGER NOT NULL DEFAULT 0)"
        )
        old.execute(
            "INSERT INTO messages VALUES ('m1', 'c1', 1, 'bob', ?, 1.0, 'sent', 0)",
            ('[{"mime_type": "text/plain", "body": "kept"}]',),
        )
    store = await Store.open(path)
    try:
        [message] = await store.messages("c1")
        assert (message.text, message.bot) == ("kept", False)
        assert await store.announcements() == []
    finally:
        await store.close()


async def _count(items: list[object], n: int) -> bool:
    return len(items) >= n
