"""Requests over the WebSocket: message.send, receipt.mark, typing.update, ping, bad frames."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.server.test_websocket import create_conversation, open_device, sign_in
from tests.support import AppFixture, RunningServer


def _text(body: str) -> list[dict[str, str]]:
    return [{"mime_type": "text/plain", "body": body}]


async def test_message_send_answers_and_reaches_both_users(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    bob = await sign_in(client, app, "bob", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    a, b = await open_device(server, alice.token), await open_device(server, bob.token)
    message_id = str(uuid.uuid4())
    data = {"conversation_id": conversation_id, "id": message_id, "parts": _text("hi")}
    answer = await a.request("message.send", data)
    assert answer["ok"] is True, answer
    assert answer["data"]["created"] is True
    assert answer["data"]["message"]["id"] == message_id
    position = answer["data"]["message"]["position"]
    again = await a.request("message.send", data)
    assert again["data"] == {"message": answer["data"]["message"], "created": False}
    await b.until_cursor(b.hello["head"] + 1)
    assert b.events[-1]["type"] == "message.created"
    assert b.events[-1]["data"]["message"]["id"] == message_id
    await a.until_cursor(a.hello["head"] + 1)
    assert a.events[-1]["data"]["message"]["position"] == position
    for device in (a, b):
        await device.ws.close()


async def test_message_send_errors_are_responses(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    missing = await device.request(
        "message.send",
        {"conversation_id": str(uuid.uuid4()), "id": str(uuid.uuid4()), "parts": _text("x")},
    )
    assert missing["ok"] is False
    assert missing["error"]["id"] == "not_found"
    shapeless = await device.request("message.send", {"conversation_id": 5})
    assert shapeless["error"]["id"] == "invalid_request"
    assert shapeless["error"]["data"] == {"property": "conversation_id"}
    await device.ws.close()


async def test_receipt_mark_moves_the_watermark(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    bob = await sign_in(client, app, "bob", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    a = await open_device(server, alice.token)
    for n in range(3):
        data = {"conversation_id": conversation_id, "id": str(uuid.uuid4()), "parts": _text(f"{n}")}
        assert (await a.request("message.send", data))["ok"]
    b = await open_device(server, bob.token)
    marked = await b.request(
        "receipt.mark", {"conversation_id": conversation_id, "type": "read", "position": 2}
    )
    assert marked["ok"], marked
    assert marked["data"]["read_position"] == 2
    assert marked["data"]["unread_count"] == 1
    bad = await b.request(
        "receipt.mark", {"conversation_id": conversation_id, "type": "read", "position": True}
    )
    assert bad["error"]["id"] == "invalid_request"
    for device in (a, b):
        await device.ws.close()


async def test_ping_reports_time_and_head(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await create_conversation(client, alice, ["bob"])
    server.clock.advance(7)
    pong = await device.request("ping", {})
    assert pong["data"] == {"server_time": server.clock.now(), "head": 1}
    await device.ws.close()


@pytest.mark.parametrize(
    ("frame", "error_id"),
    [
        ({"type": "request", "method": "ping", "data": {}}, "invalid_request"),
        ({"type": "request", "request_id": "a b", "method": "ping"}, "invalid_request"),
        ({"type": "nonsense", "request_id": "r1", "method": "ping"}, "invalid_request"),
        ({"type": "request", "request_id": "r1", "method": "launch"}, "invalid_request"),
        ({"type": "request", "request_id": "r1", "method": "ping", "data": []}, "invalid_request"),
    ],
)
async def test_bad_requests_get_error_responses_and_the_socket_lives(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    frame: dict[str, object],
    error_id: str,
) -> None:
    import orjson

    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    await device.ws.send(orjson.dumps(frame).decode())
    answer = await device.frame()
    assert answer["type"] == "response"
    assert answer["ok"] is False
    assert answer["error"]["id"] == error_id
    assert answer["request_id"] == (
        frame["request_id"] if frame.get("request_id") == "r1" else None
    )
    assert (await device.request("ping", {}))["ok"] is True
    await device.ws.close()


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", b"{}"])
async def test_frames_that_are_not_json_objects_close_with_4400(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, payload: str | bytes
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.ws.send(payload)
    code, _ = await device.closed()
    assert code == 4400


async def test_typing_is_relayed_to_others_and_silence_pauses_then_finishes(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    bob = await sign_in(client, app, "bob", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    a, b = await open_device(server, alice.token), await open_device(server, bob.token)
    # Signals are ephemeral and may overtake ``caught_up``; settle both streams first so the
    # silence check below sees only typing frames.
    await a.until_caught_up()
    await b.until_caught_up()
    update = {"conversation_id": conversation_id, "state": "started"}
    answer = await a.request("typing.update", update)
    assert (answer["ok"], answer["data"]) == (True, {})
    started = await b.until_signal(1)
    assert started == {
        "type": "signal",
        "signal": "typing",
        "data": {"conversation_id": conversation_id, "user_id": "alice", "state": "started"},
    }
    assert (await a.request("typing.update", update))["ok"]  # repeated: nothing new to say
    server.clock.advance(2.4)
    with pytest.raises(TimeoutError):
        await b.frame(timeout=1.2)  # two sweeps pass; not silent for long enough yet
    server.clock.advance(0.1)
    paused = await b.until_signal(2)
    assert paused["data"]["state"] == "paused"
    server.clock.advance(5)
    finished = await b.until_signal(3)
    assert finished["data"]["state"] == "finished"
    assert a.signals == []
    assert len(server.services.typing) == 0
    bad = await a.request("typing.update", {"conversation_id": conversation_id, "state": "x"})
    assert bad["error"]["id"] == "invalid_request"
    for device in (a, b):
        await device.ws.close()


async def test_typing_in_someone_elses_conversation_is_not_found(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    carol = await sign_in(client, app, "carol", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    device = await open_device(server, carol.token)
    answer = await device.request(
        "typing.update", {"conversation_id": conversation_id, "state": "started"}
    )
    assert answer["error"]["id"] == "not_found"
    await device.ws.close()
