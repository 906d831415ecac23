"""The platform API charges what a request fans out (``limit_platform_recipients_per_key``),
not only that it was made: one key's announcements to 1,000 users each once slowed every
other app's users ~100-fold while its request count stayed far under its limit. Its message
pages are charged by the bodies they serve (``limit_platform_read_kib_per_key``)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chinwag.server.settings import Settings
from tests.support import AppFixture, RunningServer, platform_key

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auth_rate_per_second=0,
        limit_platform_recipients_per_key="10/minute",
        limit_platform_read_kib_per_key="200/minute",
    )


def text(body: str) -> list[dict[str, str]]:
    return [{"mime_type": "text/plain", "body": body}]


def refused(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["id"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) >= 1


async def announcements(client: httpx.AsyncClient, headers: Headers) -> list[str]:
    answer = await client.get("/v1/events", params={"after": 0, "limit": 100}, headers=headers)
    events = [item["event"] for item in answer.json()["events"]]
    return [e["data"]["announcement"]["id"] for e in events if e["type"] == "announcement.created"]


async def test_an_announcement_costs_its_recipients_and_its_size_refused_before_any_work(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    key = await platform_key(server.services, "app", app.app_id)
    url = f"/v1/platform/apps/{app.app_id}/announcements"
    users = ["alice", *(f"u{i}" for i in range(7))]
    first = {"id": str(uuid.uuid4()), "user_ids": users, "parts": text("hi")}
    assert (await client.post(url, json=first, headers=key)).status_code == 201  # 8 of 10
    second = {"id": str(uuid.uuid4()), "user_ids": users[:3], "parts": text("hi")}
    refused(await client.post(url, json=second, headers=key))  # 11 > 10
    assert await announcements(client, alice) == [first["id"]]  # nothing written
    server.clock.advance(61)
    # Each further 16 KiB of parts counts every recipient once more: 3 recipients cost 9.
    big = {"id": str(uuid.uuid4()), "user_ids": users[:3], "parts": text("x" * 32_800)}
    assert (await client.post(url, json=big, headers=key)).status_code == 201
    refused(await client.post(url, json=second, headers=key))  # 9 + 3 > 10
    other = await platform_key(server.services, "app", app.app_id)  # each key its own budget
    assert (await client.post(url, json=second, headers=other)).status_code == 201
    assert await announcements(client, alice) == [first["id"], big["id"], second["id"]]


async def test_a_platform_conversation_and_send_cost_their_participants(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    key = await platform_key(server.services, "app", app.app_id)
    base = f"/v1/platform/apps/{app.app_id}/conversations"
    made = await client.post(base, json={"participants": ["a", "b", "c", "d"]}, headers=key)
    assert made.status_code == 201, made.text  # 4 of 10
    url = f"{base}/{made.json()['id']}/messages"
    send = {"id": str(uuid.uuid4()), "sender_id": "a", "parts": text("hi")}
    assert (await client.post(url, json=send, headers=key)).status_code == 201  # 8 of 10
    refused(await client.post(url, json={**send, "id": str(uuid.uuid4())}, headers=key))
    refused(await client.post(base, json={"participants": ["a", "b"]}, headers=key))
    server.clock.advance(61)
    again = await client.post(url, json={**send, "id": str(uuid.uuid4())}, headers=key)
    assert again.json()["position"] == 2  # the refused send stored nothing


async def test_a_profile_change_costs_everyone_it_is_announced_to(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """A key flipping a well-connected user's name back and forth once wrote an event per
    contact per request, counted as one request."""
    key = await platform_key(server.services, "app", app.app_id)
    base = f"/v1/platform/apps/{app.app_id}"
    made = await client.post(
        f"{base}/conversations", json={"participants": ["a", "b", "c", "d", "e"]}, headers=key
    )
    assert made.status_code == 201, made.text
    server.clock.advance(61)
    user = f"{base}/users/a"
    for name in ("x", "x", "y"):  # 5, nothing (no change), 5: 10 of 10
        answer = await client.patch(user, json={"display_name": name}, headers=key)
        assert answer.status_code == 200, answer.text
    refused(await client.patch(user, json={"display_name": "z"}, headers=key))
    assert (await client.get(user, headers=key)).json()["display_name"] == "y"  # not written
    server.clock.advance(61)
    bot = {"user_id": "helper", "display_name": "Helper"}
    assert (await client.post(f"{base}/bots", json=bot, headers=key)).status_code == 201  # free
    with_bot = {"participants": ["helper", "a", "b", "c"]}
    assert (await client.post(f"{base}/conversations", json=with_bot, headers=key)).is_success
    renamed = {**bot, "display_name": "Helper 2"}  # 4 + 4 = 8 of 10
    assert (await client.post(f"{base}/bots", json=renamed, headers=key)).status_code == 200
    refused(await client.post(f"{base}/bots", json={**bot, "display_name": "3"}, headers=key))
    assert (await client.post(f"{base}/bots", json=renamed, headers=key)).status_code == 200


async def test_a_platform_message_page_costs_the_bodies_it_serves(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """The page that spends the key's read budget is served, the next refused before any
    work; each key has its own."""
    key = await platform_key(server.services, "app", app.app_id)
    base = f"/v1/platform/apps/{app.app_id}/conversations"
    made = await client.post(base, json={"participants": ["a", "b"]}, headers=key)
    assert made.status_code == 201, made.text
    url = f"{base}/{made.json()['id']}/messages"
    for _ in range(3):  # 3 x 59 KiB: 176 KiB a page
        send = {"id": str(uuid.uuid4()), "sender_id": "a", "parts": text("x" * 60_000)}
        assert (await client.post(url, json=send, headers=key)).status_code == 201
    for _ in range(2):  # 176, then 352 of 200 KiB
        page = await client.get(url, headers=key)
        assert page.status_code == 200, page.text[:200]
        assert len(page.json()["messages"]) == 3
    refused(await client.get(url, headers=key))
    other = await platform_key(server.services, "app", app.app_id)
    assert (await client.get(url, headers=other)).status_code == 200
    server.clock.advance(61)
    assert (await client.get(url, headers=key)).status_code == 200
