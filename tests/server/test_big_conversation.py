"""A 1,000-member conversation (issue #13): 200 devices connected, 500 messages; every
device gets every message exactly once and in order, and a device that was offline during
them catches up exactly, over REST and over a socket's replay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.server.test_websocket import Device, SignedIn, open_device, sign_in
from tests.support import AppFixture, RunningServer, read_whole_stream

pytestmark = pytest.mark.slow

MEMBERS = 1000
CONNECTED = 200
MESSAGES = 500


async def _send(client: httpx.AsyncClient, user: SignedIn, conv: str, body: str) -> int:
    sent = await client.post(
        f"/v1/conversations/{conv}/messages",
        json={"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]},
        headers=user.headers,
    )
    assert sent.status_code == 201, sent.text
    return int(sent.json()["position"])


def _positions(events: list[dict[str, Any]], conv: str) -> list[int]:
    return [
        e["data"]["message"]["position"]
        for e in events
        if e["type"] == "message.created" and e["data"]["message"]["conversation_id"] == conv
    ]


async def test_a_thousand_members_two_hundred_devices_five_hundred_messages(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    now = server.clock.now()
    users = [await sign_in(client, app, f"u{i}", now) for i in range(CONNECTED + 1)]
    offline = users[-1]
    others = [f"u{i}" for i in range(1, MEMBERS)]
    made = await client.post(
        "/v1/conversations", json={"participants": others}, headers=users[0].headers
    )
    assert made.status_code == 201, made.text
    conv = str(made.json()["id"])
    assert len(made.json()["participants"]) == MEMBERS

    devices: list[Device] = []
    for start in range(0, CONNECTED, 20):  # 200 handshakes at once outran their timeout
        devices += await asyncio.gather(
            *(open_device(server, u.token) for u in users[start : start + 20])
        )
    await asyncio.gather(*(d.until_caught_up() for d in devices))
    offline_cursor = await client.get("/v1/events?after=0&limit=1", headers=offline.headers)
    offline_after = int(offline_cursor.json()["head"])

    async def read_all(device: Device) -> None:
        # Device.frame asserts every cursor is the previous one plus one.
        await device.until_cursor(device.cursor + MESSAGES, timeout=240)

    readers = [asyncio.create_task(read_all(d)) for d in devices]
    positions: list[int] = []
    # The loop is shared with 200 sockets and the server: a connection can sit idle past
    # the server's keep-alive timeout, and reusing it as the server closes it is a
    # ReadError. Connections idle for over a second are dropped by the client instead.
    limits = httpx.Limits(keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as sender:
        for start in range(0, MESSAGES, 10):  # ten at a time from ten senders, concurrently
            batch = [
                _send(sender, users[(start + k) % CONNECTED], conv, f"m{start + k}")
                for k in range(10)
            ]
            positions += await asyncio.gather(*batch)
    await asyncio.gather(*readers)

    assert sorted(positions) == list(range(1, MESSAGES + 1))
    for device in devices:
        assert _positions(device.events, conv) == list(range(1, MESSAGES + 1))
        assert len(device.events) == MESSAGES  # nothing else, nothing twice

    missed = await read_whole_stream(client, offline.headers, offline_after)
    assert _positions(missed, conv) == list(range(1, MESSAGES + 1))
    assert len(missed) == MESSAGES
    late = await open_device(server, offline.token, after=offline_after)
    await late.until_caught_up()
    assert late.events == missed
    for device in [*devices, late]:
        await device.ws.close()
