"""Each app's conversation_policy: who may start (or widen) a conversation with whom."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chinwag.core.errors import InvalidRequest
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.storage import users as user_store
from tests.support import AppFixture, RunningServer, bearer, make_app

Headers = dict[str, str]


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services, allow_anonymous=True)


async def with_policy(server: RunningServer, app: AppFixture, policy: str) -> None:
    await app_handlers.update_app(server.services, app.app_id, conversation_policy=policy)


async def anonymous(client: httpx.AsyncClient, app: AppFixture) -> Headers:
    answer = await client.post("/v1/sessions/anonymous", json={"app_id": app.app_id})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['session_token']}"}


async def create(client: httpx.AsyncClient, headers: Headers, *others: str) -> httpx.Response:
    body = {"participants": list(others)}
    return await client.post("/v1/conversations", json=body, headers=headers)


def refused(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 403, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["id"] == "participants_not_allowed"
    return error


async def user_exists(server: RunningServer, app: AppFixture, user_id: str) -> bool:
    async with server.services.db.read() as conn:
        return await user_store.get_user(conn, app.app_id, user_id) is not None


async def test_open_is_the_default_and_creates_named_users(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    assert (await app_handlers.get_app(server.services, app.app_id)).conversation_policy == "open"
    assert (await create(client, alice, "ghost")).status_code == 201
    assert await user_exists(server, app, "ghost")


async def test_existing_users_refuses_unknown_ids_and_creates_no_one(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    await with_policy(server, app, "existing_users")
    refused(await create(client, alice, "bob", "ghost"))
    assert not await user_exists(server, app, "ghost")
    made = await create(client, alice, "bob")
    assert made.status_code == 201, made.text
    conv = made.json()["id"]
    widen = await client.post(
        f"/v1/conversations/{conv}/participants", json={"user_ids": ["ghost"]}, headers=alice
    )
    refused(widen)
    assert not await user_exists(server, app, "ghost")
    anon = await anonymous(client, app)
    assert (await create(client, anon, "alice")).status_code == 201


async def test_anonymous_users_may_only_talk_to_agents_and_refusals_look_alike(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    await with_policy(server, app, "anonymous_to_agents")
    agents = await app_handlers.set_agents(server.services, app.app_id, add=["support"], remove=[])
    assert agents == ["support"]
    anon = await anonymous(client, app)
    not_an_agent = refused(await create(client, anon, "bob"))
    nobody = refused(await create(client, anon, "ghost"))
    assert not_an_agent == nobody  # existing or not, the answer is the same
    refused(await create(client, anon, "support", "bob"))
    made = await create(client, anon, "support")
    assert made.status_code == 201, made.text
    widen = await client.post(
        f"/v1/conversations/{made.json()['id']}/participants",
        json={"user_ids": ["bob"]},
        headers=anon,
    )
    refused(widen)
    assert (await create(client, alice, "bob")).status_code == 201  # identified: existing
    refused(await create(client, alice, "ghost"))
    support = await bearer(client, app, "support", server.clock.now())
    assert (await client.get("/v1/users/support", headers=support)).status_code == 200


async def test_agents_can_be_removed_and_bad_values_are_refused(
    server: RunningServer, app: AppFixture
) -> None:
    services = server.services
    await app_handlers.set_agents(services, app.app_id, add=["a1", "a2"], remove=[])
    assert await app_handlers.set_agents(services, app.app_id, add=[], remove=["a1"]) == ["a2"]
    assert await app_handlers.list_agents(services, app.app_id) == ["a2"]
    with pytest.raises(InvalidRequest):
        await app_handlers.update_app(services, app.app_id, conversation_policy="closed")
    with pytest.raises(InvalidRequest):
        await app_handlers.set_agents(services, app.app_id, add=["bad\x00id"], remove=[])
