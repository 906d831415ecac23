""" "My conversations by last message" without a write per member per message (issue #13):
an active member's conversation moves with every message, a former member's stays where
it was when they left."""

from __future__ import annotations

import httpx

from tests.server.test_conversations import create, send
from tests.support import AppFixture, RunningServer, bearer

Headers = dict[str, str]


async def _order(client: httpx.AsyncClient, headers: Headers) -> list[str]:
    listed = await client.get("/v1/conversations?sort=last_message", headers=headers)
    assert listed.status_code == 200, listed.text
    return [c["id"] for c in listed.json()["conversations"]]


async def test_messages_move_a_conversation_up_but_not_after_leaving(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    carol = await bearer(client, app, "carol", server.clock.now())
    with_bob = (await create(client, alice, participants=["bob"])).json()["id"]
    with_carol = (await create(client, alice, participants=["carol"])).json()["id"]
    server.clock.advance(1)
    await send(client, bob, with_bob, "1")
    assert await _order(client, alice) == [with_bob, with_carol]
    server.clock.advance(1)
    await send(client, carol, with_carol, "2")
    assert await _order(client, alice) == [with_carol, with_bob]

    server.clock.advance(1)
    left = await client.post(f"/v1/conversations/{with_carol}/leave", headers=alice)
    assert left.status_code == 204, left.text
    # Frozen at carol's last message while alice was there, not at her joining.
    assert await _order(client, alice) == [with_carol, with_bob]
    server.clock.advance(1)
    await send(client, bob, with_bob, "3")
    assert await _order(client, alice) == [with_bob, with_carol]
    server.clock.advance(1)
    await send(client, carol, with_carol, "4 (alice is gone)")
    assert await _order(client, alice) == [with_bob, with_carol]
    assert await _order(client, carol) == [with_carol]
