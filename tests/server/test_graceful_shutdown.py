"""Graceful shutdown (issue #10, part 5): SIGTERM during a send storm loses nothing that was
acknowledged, closes sockets with 1001, and the SDK's outboxes resend the rest to the
restarted server, each message stored exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chinwag.client import Backoff, Client
from chinwag.core.protocol import CloseCode
from chinwag.server.context import open_services
from chinwag.server.settings import Settings
from tests.e2e.harness import ServerProcess
from tests.support import AppFixture, bearer, make_app, run_server

USERS = ("alice", "bob", "carol", "dave")
PER_USER = 60


async def _app(database_url: str) -> AppFixture:
    async with open_services(Settings(database_url=database_url)) as services:
        return await make_app(services)


def _provider(app: AppFixture, user: str) -> Any:
    async def provide(nonce: str, _needs_refresh: bool) -> str:
        return app.token({"sub": user, "nce": nonce, "iat": int(time.time())})

    return provide


def _stored(db_path: Path) -> dict[str, int]:
    """Message id → how many times the server's database holds it."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute("SELECT public_id, COUNT(*) FROM messages GROUP BY public_id")
        return {str(public_id): int(count) for public_id, count in rows}


async def _signed_in(server: ServerProcess, app: AppFixture, user: str, root: Path) -> Client:
    client = Client(
        server.url,
        app.app_id,
        store_dir=root / user,
        identity_token_provider=_provider(app, user),
        backoff=Backoff(base=0.05, cap=0.5),
    )
    await client.connect()
    await client.authenticate(user)
    await asyncio.wait_for(client.wait_until_synced(), 30)
    return client


async def _watch_close(url: str, token: str) -> int | None:
    """A raw socket's close code when the server goes away."""
    async with connect(
        url.replace("http://", "ws://") + f"/v1/websocket?session_token={token}"
    ) as ws:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
        return ws.close_code


@pytest.fixture
async def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("CHINWAG_RATE_LIMITS", "false")  # a storm, not abuse
    db_path = tmp_path / "server.db"
    database_url = f"sqlite+aiosqlite:///{db_path}"
    app = await _app(database_url)
    server = ServerProcess(database_url, db_path, tmp_path / "server.log")
    server.start()
    signed: list[Client] = []
    try:
        for user in USERS:
            signed.append(await _signed_in(server, app, user, tmp_path / "devices"))
        yield server, db_path, signed
    finally:
        for client in signed:
            await client.close()
        server.stop()


@pytest.mark.slow
async def test_sigterm_during_a_send_storm_loses_nothing_acknowledged(clients: Any) -> None:
    server, db_path, devices = clients
    acknowledged: set[str] = set()
    for device in devices:
        device.on("message_sent", acknowledged.add)
    conversations = [
        await device.create_conversation([user, USERS[(i + 1) % len(USERS)]])
        for i, (device, user) in enumerate(zip(devices, USERS, strict=True))
    ]
    token = devices[0]._auth.session.token
    watcher = asyncio.create_task(_watch_close(server.url, token))
    queued: list[str] = []
    stopping = False
    for n in range(PER_USER):
        for device, conversation in zip(devices, conversations, strict=True):
            message = await device.send_message(
                conversation.id, f"storm {n}", message_id=str(uuid.uuid4())
            )
            queued.append(message.id)
        # SIGTERM mid-storm, while sends are still being queued: on a quick machine the
        # server acknowledged all 240 before a signal sent after the loop took effect.
        if not stopping and len(acknowledged) >= 20:
            server.signal(signal.SIGTERM)
            stopping = True
    if not stopping:  # acknowledgements lagged behind the queueing: the storm is still on
        await _until(lambda: len(acknowledged) >= 20, "the first acknowledgements")
        server.signal(signal.SIGTERM)
    assert server.process is not None
    code = await asyncio.to_thread(server.process.wait, 30)
    acked_at_stop = set(acknowledged)
    stored = _stored(db_path)
    # uvicorn re-raises the signal once it has shut down: the status says SIGTERM, and the
    # 1001 below says it was handled, not fatal.
    assert code == -signal.SIGTERM, server.log_path.read_text()[-2000:]
    assert acked_at_stop <= set(stored)  # every acknowledged send was committed
    assert len(acked_at_stop) < len(queued)  # the storm was cut short
    assert await asyncio.wait_for(watcher, 10) == CloseCode.GOING_AWAY

    server.process = None
    server.start()  # the same port: the devices' outboxes find it again
    for device in devices:
        await asyncio.wait_for(device.flush_outbox(), 60)
    stored = _stored(db_path)
    assert set(stored) == set(queued)
    assert set(stored.values()) == {1}  # exactly once each
    assert acknowledged == set(queued)


async def _until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_new_requests_are_refused_while_draining(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with run_server(settings) as server:
        app = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as http:
            auth = await bearer(http, app, "alice", server.clock.now())
            made = await http.post(
                "/v1/conversations", json={"participants": ["bob"]}, headers=auth
            )
            token = auth["Authorization"].split(" ", 1)[1]
            async with connect(f"{server.ws_url}/v1/websocket?session_token={token}") as ws:
                while json.loads(await ws.recv())["type"] != "caught_up":
                    pass
                server.services.drain.start()
                ping = {"type": "request", "request_id": "r1", "method": "ping", "data": {}}
                await ws.send(json.dumps(ping))
                answer = json.loads(await ws.recv())
            body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x"}]}
            refused = await http.post(
                f"/v1/conversations/{made.json()['id']}/messages", json=body, headers=auth
            )
            alive = await http.get("/healthz")
            ready = await http.get("/readyz")
    assert answer["type"] == "response"
    assert answer["error"]["id"] == "service_unavailable"
    assert refused.status_code == 503
    assert refused.json()["error"]["id"] == "service_unavailable"
    assert refused.headers["connection"] == "close"
    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["error"]["data"]["checks"]["draining"] == "yes"
    # A probe on a kept-alive connection must see the node go: the next one reconnects.
    assert alive.headers["connection"] == ready.headers["connection"] == "close"
