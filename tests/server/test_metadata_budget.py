"""Conversation metadata stays within its byte budget; changes are announced as patches;
event pages are bounded in bytes as well as in count."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from chinwag.server.settings import Settings
from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from tests.server.test_websocket import create_conversation, open_device, sign_in
from tests.support import AppFixture, RunningServer

Headers = dict[str, str]
LIMIT = 2048


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The budget, not the metadata rate limit, must be what stops the patches here.
    return Settings(
        database_url=database_url,
        auth_rate_per_second=0,
        max_metadata_bytes=LIMIT,
        rate_limits=False,
    )


async def create(client: httpx.AsyncClient, headers: Headers, **body: Any) -> httpx.Response:
    return await client.post("/v1/conversations", json=body, headers=headers)


async def patch(
    client: httpx.AsyncClient, headers: Headers, conv: str, **changes: Any
) -> httpx.Response:
    body = {"metadata": changes}
    return await client.patch(f"/v1/conversations/{conv}", json=body, headers=headers)


def too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["id"] == "metadata_too_large"
    assert error["data"] == {"max_bytes": LIMIT}
    assert str(LIMIT) in error["message"]


async def test_creating_with_metadata_over_the_budget_is_413(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    too_large(await create(client, alice, participants=["bob"], metadata={"a": "x" * LIMIT}))
    fits = await create(client, alice, participants=["bob"], metadata={"a": "x" * (LIMIT - 16)})
    assert fits.status_code == 201, fits.text


async def test_repeated_patches_cannot_grow_metadata_past_the_budget(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    for n in range(100):
        answer = await patch(client, alice, conv, set={f"k{n}": "v" * 200})
        if answer.status_code != 200:
            break
    too_large(answer)
    assert 5 <= n < 12
    kept = (await client.get(f"/v1/conversations/{conv}", headers=alice)).json()["metadata"]
    assert len(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)) <= LIMIT
    assert f"k{n}" not in kept
    shrink = await patch(client, alice, conv, delete=["k0"])
    assert shrink.status_code == 200  # making it smaller is always allowed


async def test_a_patch_over_the_budget_is_refused_even_if_it_deletes_what_it_sets(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    too_large(await patch(client, alice, conv, set={"a": "x" * LIMIT}, delete=["a"]))


async def test_an_update_event_carries_the_patch_not_the_whole_metadata(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    big = {"notes": "n" * (LIMIT - 100)}
    conv = (await create(client, alice, participants=["bob"], metadata=big)).json()["id"]
    answer = await patch(client, alice, conv, set={"k": "v"}, delete=["gone"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {**big, "k": "v"}
    raw = await client.get("/v1/events", headers=bob)
    update = raw.json()["events"][-1]["event"]
    assert update["type"] == "conversation.updated"
    assert update["data"] == {
        "conversation_id": conv,
        "metadata": {"set": {"k": "v"}, "delete": ["gone"]},
    }
    assert len(orjson.dumps(update)) < 300
    same = await patch(client, alice, conv, set={"k": "v"})  # no change: no event
    assert same.status_code == 200
    assert (await client.get("/v1/events", headers=bob)).json()["head"] == raw.json()["head"]


@pytest.mark.parametrize(
    "changes",
    [{"set": {"a": 5}}, {"set": {"a..b": "x"}}, {"delete": [3]}, {"set": [], "delete": []}],
)
async def test_malformed_patches_are_422(
    client: httpx.AsyncClient, alice: Headers, changes: dict[str, Any]
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    answer = await client.patch(
        f"/v1/conversations/{conv}", json={"metadata": changes}, headers=alice
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["data"] == {"property": "metadata"}


async def test_event_pages_are_bounded_in_bytes_and_stay_dense(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    conv = (await create(client, alice, participants=["bob"])).json()["id"]
    body = "x" * 60_000
    for _ in range(24):  # ~1.4 MiB of message.created events for bob
        sent = await client.post(
            f"/v1/conversations/{conv}/messages",
            json={"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]},
            headers=bob,
        )
        assert sent.status_code == 201, sent.text
    first = await client.get("/v1/events", params={"limit": 1000}, headers=alice)
    page = first.json()
    assert len(first.content) <= event_store.MAX_PAGE_BYTES + 4096
    assert page["has_more"] is True
    cursors = [e["cursor"] for e in page["events"]]
    assert cursors == list(range(1, len(cursors) + 1))
    rest = await client.get(
        "/v1/events", params={"after": cursors[-1], "limit": 1000}, headers=alice
    )
    more = [e["cursor"] for e in rest.json()["events"]]
    assert more == list(range(cursors[-1] + 1, 26))
    assert rest.json()["has_more"] is False


async def test_a_single_event_larger_than_the_byte_bound_still_comes_alone(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    for _ in range(3):
        assert (await create(client, alice, participants=["bob"])).status_code == 201
    async with server.services.db.read() as conn:
        me = await user_store.get_user(conn, app.app_id, "alice")
        assert me is not None
        tiny = await event_store.read_stream(conn, me.pk, after=0, limit=10, max_bytes=10)
        two = await event_store.read_stream(conn, me.pk, after=0, limit=2)
        every = await event_store.read_stream(conn, me.pk, after=0, limit=10)
    assert [e.pos for e in tiny] == [1]
    assert [e.pos for e in two] == [1, 2]
    assert [e.pos for e in every] == [1, 2, 3]
    exact = sum(len(e.event_json) for e in every[:2])
    async with server.services.db.read() as conn:
        cut = await event_store.read_stream(conn, me.pk, after=0, limit=10, max_bytes=exact)
    assert [e.pos for e in cut] == [1, 2]


async def test_a_socket_replay_crosses_byte_bounded_pages_without_a_gap(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    bob = await sign_in(client, app, "bob", server.clock.now())
    conv = await create_conversation(client, alice, ["bob"])
    for _ in range(24):  # ~1.4 MiB: more than one page by bytes, far less than one by count
        sent = await client.post(
            f"/v1/conversations/{conv}/messages",
            json={
                "id": str(uuid.uuid4()),
                "parts": [{"mime_type": "text/plain", "body": "x" * 60_000}],
            },
            headers=bob.headers,
        )
        assert sent.status_code == 201, sent.text
    device = await open_device(server, alice.token, after=0)
    await device.until_caught_up()  # Device asserts every cursor is the previous plus one
    assert device.cursor == 25
    assert [e["type"] for e in device.events].count("message.created") == 24
    await device.ws.close()
