"""GET /v1/users/{user_id}: public profiles for the caller and people they talk to."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.support import AppFixture, RunningServer, bearer, make_app

Headers = dict[str, str]


async def test_a_user_sees_their_own_public_profile(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await bearer(client, app, "alice", server.clock.now(), display_name="Alice")
    answer = await client.get("/v1/users/alice", headers=alice)
    assert answer.status_code == 200
    assert answer.json() == {
        "user_id": "alice",
        "display_name": "Alice",
        "avatar_url": None,
        "anonymous": False,
        "bot": False,
    }


async def test_a_co_participant_is_visible_without_email(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    await bearer(client, app, "bob", server.clock.now(), email="bob@example.com", display_name="B")
    alice = await bearer(client, app, "alice", server.clock.now())
    assert (await client.get("/v1/users/bob", headers=alice)).status_code == 404
    await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    answer = await client.get("/v1/users/bob", headers=alice)
    assert answer.status_code == 200
    assert answer.json()["display_name"] == "B"
    assert "email" not in answer.json()


async def test_a_participant_named_before_signing_in_exists_without_profile(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await bearer(client, app, "alice", server.clock.now())
    await client.post("/v1/conversations", json={"participants": ["zoe"]}, headers=alice)
    answer = await client.get("/v1/users/zoe", headers=alice)
    assert answer.json() == {
        "user_id": "zoe",
        "display_name": None,
        "avatar_url": None,
        "anonymous": False,
        "bot": False,
    }


@pytest.mark.parametrize("user_id", ["nobody", "x" * 300, "%00", "a%0Ab"])
async def test_unknown_or_malformed_user_ids_are_404(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, user_id: str
) -> None:
    alice = await bearer(client, app, "alice", server.clock.now())
    assert (await client.get(f"/v1/users/{user_id}", headers=alice)).status_code == 404


async def test_users_of_another_app_are_invisible(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await bearer(client, app, "alice", server.clock.now())
    await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    other = await make_app(server.services)
    stranger = await bearer(client, other, "carol", server.clock.now())
    assert (await client.get("/v1/users/bob", headers=stranger)).status_code == 404
    assert (await client.get("/v1/users/alice", headers=stranger)).status_code == 404


ODD_USER_IDS = ["team/carol", "a/../b", "/lead/", "100%", "%2F", "carol smith", "Åsa ☃", "?x#y"]


@pytest.mark.parametrize("user_id", ODD_USER_IDS)
async def test_every_valid_user_id_is_reachable_by_url(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, user_id: str
) -> None:
    """The router decodes %2F before matching: ids with "/" must still reach their route."""
    alice = await bearer(client, app, "alice", server.clock.now())
    made = await client.post("/v1/conversations", json={"participants": [user_id]}, headers=alice)
    assert made.status_code == 201, made.text
    path = quote(user_id, safe="")
    seen = await client.get(f"/v1/users/{path}", headers=alice)
    assert seen.status_code == 200, seen.text
    assert seen.json()["user_id"] == user_id
    conversation = made.json()["id"]
    removed = await client.delete(
        f"/v1/conversations/{conversation}/participants/{path}", headers=alice
    )
    assert removed.status_code == 204, removed.text
    after = await client.get(f"/v1/conversations/{conversation}", headers=alice)
    assert after.json()["participants"] == ["alice"]
