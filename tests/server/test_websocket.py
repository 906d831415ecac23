"""The WebSocket over a real loopback server: hello, replay, live, requests, endings."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chinwag.server.broker import EventsAppended, Resync
from chinwag.server.storage import events as event_store
from tests.support import AppFixture, RunningServer, login

__all__ = [
    "Device",
    "SignedIn",
    "append_silently",
    "create_conversation",
    "open_device",
    "send_rest",
    "sign_in",
    "user_pk_of",
]

_ids = itertools.count(1)


@dataclass
class Device:
    """One WebSocket client that checks every event cursor is the previous one plus one."""

    ws: ClientConnection
    hello: dict[str, Any]
    cursor: int
    events: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    caught_up: int | None = None

    async def frame(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame["type"] == "event":
            assert frame["cursor"] == self.cursor + 1, (frame["cursor"], self.cursor)
            self.cursor = frame["cursor"]
            self.events.append(frame["event"])
        elif frame["type"] == "caught_up":
            assert frame["cursor"] == self.cursor
            self.caught_up = frame["cursor"]
        elif frame["type"] == "signal":
            self.signals.append(frame)
        elif frame["type"] == "response":
            self.responses[frame["request_id"]] = frame
        return frame

    async def until_cursor(self, cursor: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while self.cursor < cursor:
                await self.frame()

    async def until_caught_up(self) -> None:
        while self.caught_up is None:
            await self.frame()

    async def until_signal(self, count: int) -> dict[str, Any]:
        while len(self.signals) < count:
            await self.frame()
        return self.signals[count - 1]

    async def request(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        request_id = f"r{next(_ids)}"
        await self.ws.send(
            orjson.dumps(
                {"type": "request", "request_id": request_id, "method": method, "data": data}
            ).decode()
        )
        while request_id not in self.responses:
            await self.frame()
        return self.responses.pop(request_id)

    async def closed(self, timeout: float = 10) -> tuple[int | None, str | None]:
        """Read to the end; the close code and reason the server sent."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.frame(timeout)
            except ConnectionClosed as closed:
                rcvd = closed.rcvd
                return (rcvd.code, rcvd.reason) if rcvd else (None, None)


async def open_device(server: RunningServer, token: str, after: int | None = None) -> Device:
    url = f"{server.ws_url}/v1/websocket" + (f"?after={after}" if after is not None else "")
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    hello: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "hello", hello
    start = hello["head"] if after is None else after
    return Device(ws=ws, hello=hello, cursor=start)


@dataclass
class SignedIn:
    token: str
    headers: dict[str, str]
    body: dict[str, Any]


async def sign_in(client: httpx.AsyncClient, app: AppFixture, user_id: str, now: float) -> SignedIn:
    body = await login(client, app, user_id, now)
    token = body["session_token"]
    return SignedIn(token, {"Authorization": f"Bearer {token}"}, body)


async def create_conversation(
    client: httpx.AsyncClient, user: SignedIn, participants: list[str]
) -> str:
    made = await client.post(
        "/v1/conversations", json={"participants": participants}, headers=user.headers
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def send_rest(
    client: httpx.AsyncClient, user: SignedIn, conversation_id: str, body: str
) -> dict[str, Any]:
    sent = await client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]},
        headers=user.headers,
    )
    assert sent.status_code == 201, sent.text
    result: dict[str, Any] = sent.json()
    return result


async def close_of(server: RunningServer, query: str, **headers: str) -> tuple[int, str]:
    async with connect(f"{server.ws_url}/v1/websocket{query}", additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_plain_get_of_the_websocket_path_says_to_upgrade(
    client: httpx.AsyncClient,
) -> None:
    """Not 404 "No such endpoint" (the path is right, the request is not a WebSocket)."""
    answer = await client.get("/v1/websocket")
    assert answer.status_code == 426
    assert answer.headers["upgrade"] == "websocket"
    error = answer.json()["error"]
    assert error["id"] == "invalid_request"
    assert "WebSocket" in error["message"]


async def test_missing_or_bad_session_is_closed_with_4001(server: RunningServer) -> None:
    assert await close_of(server, "") == (4001, "authentication_required")
    assert await close_of(server, "?session_token=nonsense") == (4001, "authentication_required")
    assert (await close_of(server, "", Authorization="Bearer x.y.z"))[0] == 4001


async def test_session_token_in_query_works(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    url = f"{server.ws_url}/v1/websocket?session_token={alice.token}"
    async with connect(url) as ws:
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "hello"
    assert hello["user"]["user_id"] == "alice"
    assert hello["session_id"] == alice.body["session_id"]


async def test_cursor_beyond_head_or_malformed_is_a_protocol_error(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    auth = {"Authorization": f"Bearer {alice.token}"}
    assert (await close_of(server, "?after=1", **auth))[0] == 4400
    assert (await close_of(server, "?after=-1", **auth))[0] == 4400
    assert (await close_of(server, "?after=x", **auth))[0] == 4400


async def test_default_is_live_only_and_live_events_arrive(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    device = await open_device(server, alice.token)
    assert device.hello["head"] == 1
    await device.until_caught_up()
    assert device.caught_up == 1
    assert device.events == []
    await send_rest(client, alice, conversation_id, "hello")
    await device.until_cursor(2)
    assert device.events[-1]["type"] == "message.created"
    assert device.events[-1]["data"]["message"]["parts"][0]["body"] == "hello"
    await device.ws.close()


async def test_replay_from_a_cursor_then_caught_up_then_live(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    for n in range(5):
        await send_rest(client, alice, conversation_id, f"m{n}")
    device = await open_device(server, alice.token, after=2)
    await device.until_caught_up()
    assert device.caught_up == 6
    bodies = [e["data"]["message"]["parts"][0]["body"] for e in device.events]
    assert bodies == ["m1", "m2", "m3", "m4"]
    await send_rest(client, alice, conversation_id, "live")
    await device.until_cursor(7)
    await device.ws.close()


async def test_replay_larger_than_a_page_and_the_queue(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """Replay waits for room in the bounded queue instead of overflowing it."""
    server.settings.connection_queue_size = 8
    alice = await sign_in(client, app, "alice", server.clock.now())
    user_pk = await user_pk_of(server, alice)
    await append_silently(server, app.app_id, user_pk, 1203)
    device = await open_device(server, alice.token, after=0)
    await device.until_caught_up()
    assert device.caught_up == 1203
    assert len(device.events) == 1203
    await device.ws.close()


async def test_a_missed_doorbell_is_filled_from_the_store(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    user_pk = await user_pk_of(server, alice)
    await append_silently(server, app.app_id, user_pk, 3)  # stored, no doorbell
    await send_rest(client, alice, conversation_id, "after the gap")
    await device.until_cursor(5)
    assert [e["type"] for e in device.events] == ["test.silent"] * 3 + ["message.created"]
    await device.ws.close()


async def test_a_broker_resync_makes_every_socket_check_the_store(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    await append_silently(server, app.app_id, await user_pk_of(server, alice), 2)
    server.services.on_doorbell(Resync())  # what a broker does after resubscribing
    await device.until_cursor(2)
    assert [e["data"] for e in device.events] == [{"n": 0}, {"n": 1}]
    await device.ws.close()


def _server_tasks() -> Counter[str]:
    """Running tasks of the server's code (chinwag's and uvicorn's), by coroutine name."""
    found: Counter[str] = Counter()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and (
            "chinwag/server" in code.co_filename or "uvicorn" in code.co_filename
        ):
            found[code.co_qualname] += 1
    return found


async def test_an_idle_socket_runs_only_its_own_task_and_still_gets_events(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """Memory per idle socket is a target (bench/fanout.py): once caught up, a socket
    keeps only the task uvicorn serves it in; no writer, reader or catch-up task waits."""
    alice = await sign_in(client, app, "alice", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    before = _server_tasks()
    devices = [await open_device(server, alice.token) for _ in range(3)]
    for device in devices:
        await device.until_caught_up()
    await asyncio.sleep(0.05)  # the writers end once their last frame is out
    assert _server_tasks() - before == {"WebSocketsSansIOProtocol.run_asgi": 3}
    await send_rest(client, alice, conversation_id, "still there?")
    for device in devices:
        await device.until_cursor(2)
        assert device.events[-1]["data"]["message"]["parts"][0]["body"] == "still there?"
        await device.ws.close()


async def user_pk_of(server: RunningServer, user: SignedIn) -> int:
    from chinwag.server.handlers.auth import authenticate

    caller = await authenticate(server.services, user.token)
    return caller.user.pk


async def append_silently(
    server: RunningServer, app_id: str, user_pk: int, count: int
) -> list[EventsAppended]:
    """Append events straight to the store and return their doorbells, unrung."""
    doorbells = []
    async with server.services.db.transaction() as tx:
        for n in range(count):
            appended = await event_store.append_event(
                tx.conn,
                app_id=app_id,
                event_type="test.silent",
                data={"n": n},
                user_pks=[user_pk],
                now=server.clock.now(),
            )
            doorbells.append(EventsAppended(appended.event_json, appended.targets))
    return doorbells
