"""Receipts as per-user watermarks: monotonic, clamped, shared by devices, announced."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import AppFixture, RunningServer, bearer

Headers = dict[str, str]


async def mark(
    client: httpx.AsyncClient, headers: Headers, conv: str, kind: Any, position: Any
) -> httpx.Response:
    body = {"type": kind, "position": position}
    return await client.post(f"/v1/conversations/{conv}/receipts", json=body, headers=headers)


def marks(answer: httpx.Response) -> tuple[int, int, int]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["read_position"], body["delivered_position"], body["unread_count"]


@pytest.fixture
async def conv(client: httpx.AsyncClient, alice: Headers, bob: Headers) -> str:
    made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    conv_id = str(made.json()["id"])
    for i in range(5):
        body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": str(i)}]}
        sent = await client.post(f"/v1/conversations/{conv_id}/messages", json=body, headers=alice)
        assert sent.status_code == 201
    return conv_id


async def test_read_moves_forward_and_never_back(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    assert marks(await mark(client, bob, conv, "read", 3)) == (3, 3, 2)
    assert marks(await mark(client, bob, conv, "read", 1)) == (3, 3, 2)


async def test_delivered_never_falls_below_read(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    assert marks(await mark(client, bob, conv, "delivered", 4)) == (0, 4, 5)
    assert marks(await mark(client, bob, conv, "read", 2)) == (2, 4, 3)
    assert marks(await mark(client, bob, conv, "delivered", 1)) == (2, 4, 3)


async def test_positions_beyond_the_newest_message_are_clamped(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    assert marks(await mark(client, bob, conv, "read", 10**12)) == (5, 5, 0)


async def test_a_read_on_one_device_is_a_read_on_all(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, bob: Headers, conv: str
) -> None:
    other_device = await bearer(client, app, "bob", server.clock.now())
    await mark(client, bob, conv, "read", 4)
    seen = (await client.get(f"/v1/conversations/{conv}", headers=other_device)).json()
    assert (seen["read_position"], seen["unread_count"]) == (4, 1)


async def test_receipts_are_announced_to_every_participant_once(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, conv: str
) -> None:
    await mark(client, bob, conv, "read", 2)
    await mark(client, bob, conv, "read", 2)
    events = (await client.get("/v1/events", headers=alice)).json()["events"]
    receipts = [e["event"]["data"] for e in events if e["event"]["type"] == "receipt"]
    assert receipts == [
        {"conversation_id": conv, "user_id": "bob", "read_position": 2, "delivered_position": 2}
    ]


async def test_a_message_receipt_uses_that_messages_position(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    page = (await client.get(f"/v1/conversations/{conv}/messages", headers=bob)).json()
    third = page["messages"][2]
    answer = await client.post(
        f"/v1/messages/{third['id']}/receipts", json={"type": "read"}, headers=bob
    )
    assert marks(answer) == (3, 3, 2)


@pytest.mark.parametrize(
    ("kind", "position"),
    [("seen", 1), ("read", -1), ("read", "3"), ("read", 1.5), ("read", True), (None, 1)],
)
async def test_bad_receipts_are_422(
    client: httpx.AsyncClient, bob: Headers, conv: str, kind: Any, position: Any
) -> None:
    answer = await mark(client, bob, conv, kind, position)
    assert answer.status_code == 422, answer.text


async def test_a_huge_position_is_clamped_not_a_500(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    assert marks(await mark(client, bob, conv, "delivered", 2**80)) == (0, 5, 5)


async def test_a_former_participant_cannot_send_receipts(
    client: httpx.AsyncClient, bob: Headers, conv: str
) -> None:
    assert (await client.post(f"/v1/conversations/{conv}/leave", headers=bob)).status_code == 204
    answer = await mark(client, bob, conv, "read", 1)
    assert answer.status_code == 403


async def test_a_stranger_gets_404(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, conv: str
) -> None:
    carol = await bearer(client, app, "carol", server.clock.now())
    assert (await mark(client, carol, conv, "read", 1)).status_code == 404
