"""Issue 3's "done means": two users on two devices each see every event exactly once, in
order, through live delivery, a long absence, and a server restart."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from chinwag.clock import ManualClock
from chinwag.server.settings import Settings
from tests.server.test_websocket import Device, SignedIn, create_conversation, open_device, sign_in
from tests.support import AppFixture, RunningServer, make_app, run_server


async def _send_many(device: Device, conversation_id: str, count: int, tag: str) -> list[str]:
    """Send ``count`` messages over the device's socket, one after another."""
    ids = []
    for n in range(count):
        message_id = str(uuid.uuid4())
        answer = await device.request(
            "message.send",
            {
                "conversation_id": conversation_id,
                "id": message_id,
                "parts": [{"mime_type": "text/plain", "body": f"{tag} {n}"}],
            },
        )
        assert answer["ok"], answer
        assert answer["data"]["created"]
        ids.append(message_id)
    return ids


async def _settle(users: dict[str, list[Device]]) -> dict[str, int]:
    """Wait until every device has its user's whole stream; the heads by user."""
    heads = {}
    for name, devices in users.items():
        heads[name] = (await devices[0].request("ping", {}))["data"]["head"]
        await asyncio.gather(*(device.until_cursor(heads[name]) for device in devices))
    return heads


def _message_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["message"]["id"] for e in events if e["type"] == "message.created"]


async def _open_all(
    server: RunningServer, sessions: dict[str, list[SignedIn]], cursors: dict[str, list[int]]
) -> dict[str, list[Device]]:
    users = {}
    for name, signed in sessions.items():
        users[name] = [
            await open_device(server, s.token, after=c)
            for s, c in zip(signed, cursors[name], strict=True)
        ]
        for device in users[name]:
            await device.until_caught_up()
    return users


async def test_two_users_four_devices_every_event_once_in_order(
    settings: Settings, clock: ManualClock
) -> None:
    history: dict[str, list[list[dict[str, Any]]]] = {"alice": [[], []], "bob": [[], []]}
    sent: list[str] = []
    async with run_server(settings, clock) as server:
        app: AppFixture = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as client:
            now = clock.now()
            sessions = {
                name: [await sign_in(client, app, name, now) for _ in range(2)]
                for name in ("alice", "bob")
            }
            conversation_id = await create_conversation(client, sessions["alice"][0], ["bob"])
        users = await _open_all(server, sessions, {"alice": [0, 0], "bob": [0, 0]})
        (a1, a2), (b1, b2) = users["alice"], users["bob"]

        # Everyone talks at once, from every device.
        for ids in await asyncio.gather(
            *(_send_many(d, conversation_id, 10, f"d{i}") for i, d in enumerate((a1, a2, b1, b2)))
        ):
            sent += ids
        await _settle(users)

        # Bob's laptop goes away while 100 messages are exchanged, then resumes.
        away_at = b2.cursor
        history["bob"][1] += b2.events
        await b2.ws.close()
        for ids in await asyncio.gather(
            _send_many(a1, conversation_id, 50, "away-a"),
            _send_many(b1, conversation_id, 50, "away-b"),
        ):
            sent += ids
        b2 = await open_device(server, sessions["bob"][1].token, after=away_at)
        users["bob"][1] = b2
        await b2.until_caught_up()
        assert len(_message_ids(b2.events)) == 100
        sent += await _send_many(b2, conversation_id, 3, "back")
        await _settle(users)

        cursors = {name: [d.cursor for d in devices] for name, devices in users.items()}
        for name, devices in users.items():
            for i, device in enumerate(devices):
                history[name][i] += device.events
                await device.ws.close()

    # A new server process on the same database: everyone resumes from their cursors.
    async with run_server(settings, clock) as server:
        users = await _open_all(server, sessions, cursors)
        for device in (d for devices in users.values() for d in devices):
            assert device.events == []  # nothing replayed twice
        for ids in await asyncio.gather(
            _send_many(users["alice"][1], conversation_id, 5, "restarted-a"),
            _send_many(users["bob"][0], conversation_id, 5, "restarted-b"),
        ):
            sent += ids
        await _settle(users)
        for name, devices in users.items():
            for i, device in enumerate(devices):
                history[name][i] += device.events
                await device.ws.close()

    assert len(sent) == 40 + 100 + 3 + 10 == len(set(sent))
    for name in ("alice", "bob"):
        first, second = history[name]
        assert first == second, f"{name}'s devices disagree"
        assert sorted(_message_ids(first)) == sorted(sent)  # every message exactly once
        positions = [
            e["data"]["message"]["position"] for e in first if e["type"] == "message.created"
        ]
        assert positions == list(range(1, len(sent) + 1))  # in conversation order
