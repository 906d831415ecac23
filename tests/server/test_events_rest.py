"""GET /v1/events: delta sync over the per-user stream (dense cursors, head, has_more)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import AppFixture, RunningServer, login, make_app

Headers = dict[str, str]


@pytest.fixture
async def alice(server: RunningServer, client: httpx.AsyncClient) -> Headers:
    app: AppFixture = await make_app(server.services)
    session = await login(client, app, "alice", server.clock.now())
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    for i in range(5):
        made = await client.post(
            "/v1/conversations", json={"participants": [f"p{i}"]}, headers=headers
        )
        assert made.status_code == 201
    return headers


async def test_events_page_with_dense_cursors_and_head(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    first = (await client.get("/v1/events?limit=2", headers=alice)).json()
    assert [e["cursor"] for e in first["events"]] == [1, 2]
    assert (first["head"], first["has_more"]) == (5, True)
    assert first["events"][0]["event"]["type"] == "conversation.created"
    rest = (await client.get("/v1/events?after=2", headers=alice)).json()
    assert [e["cursor"] for e in rest["events"]] == [3, 4, 5]
    assert rest["has_more"] is False


async def test_after_the_head_is_empty(client: httpx.AsyncClient, alice: Headers) -> None:
    page = (await client.get("/v1/events?after=99", headers=alice)).json()
    assert page == {"events": [], "head": 5, "has_more": False}


async def test_each_user_sees_only_their_own_stream(
    server: RunningServer, client: httpx.AsyncClient, alice: Headers
) -> None:
    app = await make_app(server.services)
    session = await login(client, app, "p0", server.clock.now())
    other = {"Authorization": f"Bearer {session['session_token']}"}
    page = (await client.get("/v1/events", headers=other)).json()
    assert page["head"] == 0
    assert page["events"] == []


@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=1001", "after=1e3"])
async def test_bad_queries_are_422(client: httpx.AsyncClient, alice: Headers, query: str) -> None:
    assert (await client.get(f"/v1/events?{query}", headers=alice)).status_code == 422


async def test_events_need_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/events")).status_code == 401
