"""Every resource a platform key (or a user) can grow has a bound, held under concurrency:
webhook endpoints and signing keys per app, agents per app, blocks per user. On
PostgreSQL, 40 concurrent webhook creations once left 30 endpoints where the cap is 20
(each counted 19, then all inserted): the count is now taken under the app's row lock."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from chinwag.server.handlers import apps as app_handlers
from chinwag.server.handlers.blocks import MAX_BLOCKS
from chinwag.server.handlers.webhooks import MAX_ENDPOINTS
from chinwag.server.settings import Settings
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import users as user_store
from tests.support import ADMIN, AppFixture, RunningServer, hook_settings

pytestmark = pytest.mark.usefixtures("platform_admin")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url)


def capped(answer: httpx.Response, prop: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["id"] == "invalid_request"
    assert answer.json()["error"]["data"]["property"] == prop


async def test_concurrent_webhook_creations_never_pass_the_cap(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    url = f"/v1/platform/apps/{app.app_id}/webhooks"
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["message.created"]}
    made = await asyncio.gather(*(client.post(url, json=body, headers=ADMIN) for _ in range(40)))
    assert Counter(a.status_code for a in made) == {201: MAX_ENDPOINTS, 422: 40 - MAX_ENDPOINTS}
    capped(next(a for a in made if a.status_code == 422), "url")
    listed = await client.get(url, headers=ADMIN)
    assert len(listed.json()["webhooks"]) == MAX_ENDPOINTS


async def test_concurrent_signing_keys_never_pass_the_cap(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    have = len(await app_handlers.list_keys(server.services, app.app_id))
    for _ in range(app_handlers.MAX_SIGNING_KEYS - 10 - have):
        await app_handlers.add_secret(server.services, app.app_id)
    url = f"/v1/platform/apps/{app.app_id}/keys/generate"
    made = await asyncio.gather(
        *(client.post(url, json={"alg": "ES256"}, headers=ADMIN) for _ in range(20))
    )
    assert Counter(a.status_code for a in made) == {201: 10, 422: 10}
    capped(next(a for a in made if a.status_code == 422), "keys")
    keys = await app_handlers.list_keys(server.services, app.app_id)
    assert len(keys) == app_handlers.MAX_SIGNING_KEYS


async def test_agents_are_capped_and_a_refused_patch_adds_none(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    url = f"/v1/platform/apps/{app.app_id}"
    first = [f"agent{i}" for i in range(app_handlers.MAX_AGENTS)]
    answer = await client.patch(url, json={"agents_add": first}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    more = await client.patch(url, json={"agents_add": ["one-more", "two"]}, headers=ADMIN)
    capped(more, "agents_add")
    swap = {"agents_add": ["one-more"], "agents_remove": ["agent0"]}
    assert (await client.patch(url, json=swap, headers=ADMIN)).status_code == 200


async def test_blocks_per_user_are_capped_and_blocking_again_is_still_fine(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    async with server.services.db.transaction() as tx:
        pk = (await user_store.find_users(tx.conn, app.app_id, ["alice"]))["alice"][0]
        for i in range(MAX_BLOCKS):
            await block_store.add_block(
                tx.conn, app_id=app.app_id, blocker_pk=pk, blocked_user_id=f"u{i}", now=1.0
            )
    url = f"/v1/platform/apps/{app.app_id}/blocks"
    again = await client.post(url, json={"user_id": "alice", "blocked": "u0"}, headers=ADMIN)
    assert again.status_code == 204, again.text
    capped(
        await client.post(url, json={"user_id": "alice", "blocked": "new"}, headers=ADMIN),
        "user_id",
    )
