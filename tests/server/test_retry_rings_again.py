"""A send retried after its node died between the commit and the doorbell: the message is
stored, no other node heard of it, and the retry (answered as a repeat by another node)
must ring again, or a recipient's live socket never learns of the message.

Two servers on one database, each with its own in-process broker, stand in for a node
whose doorbell was lost: whatever one rings, the other never hears."""

from __future__ import annotations

import uuid

import httpx

from chinwag.clock import ManualClock
from chinwag.server.settings import Settings
from tests.server.test_websocket import create_conversation, open_device, sign_in
from tests.support import make_app, run_server


async def test_a_retry_answered_as_a_repeat_rings_the_recipients_again(
    settings: Settings, clock: ManualClock
) -> None:
    async with run_server(settings, clock) as dying, run_server(settings, clock) as other:
        app = await make_app(other.services)
        async with (
            httpx.AsyncClient(base_url=dying.url) as first,
            httpx.AsyncClient(base_url=other.url) as second,
        ):
            alice = await sign_in(second, app, "alice", clock.now())
            bob = await sign_in(second, app, "bob", clock.now())
            conversation_id = await create_conversation(second, alice, ["bob"])
            device = await open_device(other, bob.token)
            await device.until_caught_up()
            start = device.cursor
            message = {
                "id": str(uuid.uuid4()),
                "parts": [{"mime_type": "text/plain", "body": "the answer was lost"}],
            }
            url = f"/v1/conversations/{conversation_id}/messages"
            stored = await first.post(url, json=message, headers=alice.headers)
            assert stored.status_code == 201, stored.text  # its doorbell stays on that node
            repeat = await second.post(url, json=message, headers=alice.headers)
            assert repeat.status_code == 200, repeat.text
            assert repeat.json()["id"] == message["id"]
            await device.until_cursor(start + 1)
            created = [e for e in device.events if e["type"] == "message.created"]
            assert [e["data"]["message"]["id"] for e in created] == [message["id"]]
            await device.ws.close()
