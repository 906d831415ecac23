"""PostgreSQL backends terminated under a running server (``pg_terminate_backend`` over a
separate connection): clients get 503 + ``Retry-After`` or a WebSocket error response,
never a 500, and the pool recovers for the next request."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from chinwag.server.settings import Settings
from tests.server.test_websocket import Device, create_conversation, open_device, sign_in
from tests.support import POSTGRES_ONLY, AppFixture, RunningServer, make_app

pytestmark = [pytest.mark.postgres, POSTGRES_ONLY]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auth_rate_per_second=0, rate_limits=False)


async def terminate_all(admin: asyncpg.Connection) -> int:
    """End every backend of the test's database except ``admin``'s; how many there were."""
    rows = await admin.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return len(rows)


def _message(conversation_id: str | None = None, body: str = "hi") -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "parts": [{"mime_type": "text/plain", "body": body}],
    }
    if conversation_id is not None:
        message["conversation_id"] = conversation_id
    return message


async def test_requests_after_every_backend_was_terminated_succeed(
    server: RunningServer, client: httpx.AsyncClient, pg_admin: asyncpg.Connection
) -> None:
    app: AppFixture = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    conv = await create_conversation(client, alice, ["bob"])
    assert await terminate_all(pg_admin) > 0
    for _ in range(3):  # more than one pooled connection was lost
        sent = await client.post(
            f"/v1/conversations/{conv}/messages", json=_message(), headers=alice.headers
        )
        assert sent.status_code == 201, sent.text


async def _terminating(admin: asyncpg.Connection, stop: asyncio.Event) -> int:
    """Terminate the server's backends over and over until ``stop``; how many rounds."""
    rounds = 0
    while not stop.is_set():
        await terminate_all(admin)
        rounds += 1
        await asyncio.sleep(0.02)
    return rounds


async def test_sends_during_terminations_answer_201_or_a_clean_503(
    server: RunningServer, client: httpx.AsyncClient, pg_admin: asyncpg.Connection
) -> None:
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    conv = await create_conversation(client, alice, ["bob"])
    stop = asyncio.Event()
    killer = asyncio.create_task(_terminating(pg_admin, stop))

    async def send() -> httpx.Response:
        return await client.post(
            f"/v1/conversations/{conv}/messages", json=_message(), headers=alice.headers
        )

    answers: list[httpx.Response] = []
    for _ in range(15):
        answers += await asyncio.gather(*(send() for _ in range(8)))
    stop.set()
    assert await killer > 0
    statuses = {a.status_code for a in answers}
    assert statuses <= {201, 503}, [a.text for a in answers if a.status_code not in (201, 503)]
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["id"] == "service_unavailable"
        assert refused.json()["error"]["data"] == {"retry_after": 1}
    after = await send()
    assert after.status_code == 201, after.text


async def test_websocket_requests_during_terminations_get_ok_or_an_error_response(
    server: RunningServer, client: httpx.AsyncClient, pg_admin: asyncpg.Connection
) -> None:
    """Each request is answered ok or ``service_unavailable`` and the socket lives; only
    the socket's own stream read may fail, and that closes it 4008 ``resume_later``
    (reconnect after a pause, as documented), never anything else."""
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    conv = await create_conversation(client, alice, ["bob"])
    device = await open_device(server, alice.token)
    stop = asyncio.Event()
    killer = asyncio.create_task(_terminating(pg_admin, stop))
    answers: list[dict[str, Any]] = []
    closes: list[tuple[int, str] | None] = []
    while len(answers) < 60:
        try:
            answers.append(await device.request("message.send", _message(conv)))
        except ConnectionClosed as closed:
            closes.append((closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None)
            device = await _reopen(server, alice.token)
    stop.set()
    assert await killer > 0
    refused = [a["error"] for a in answers if not a["ok"]]
    assert all(e["id"] == "service_unavailable" for e in refused), refused
    assert all(e["data"] == {"retry_after": 1} for e in refused), refused
    assert set(closes) <= {(4008, "resume_later")}, closes
    last = await device.request("message.send", _message(conv))
    assert last["ok"] is True, last
    await device.ws.close()


async def _reopen(server: RunningServer, token: str) -> Device:
    """A new socket, as the SDK makes after a 4008 (the handshake itself may meet 4008)."""
    while True:
        try:
            return await open_device(server, token)
        except ConnectionClosed as closed:
            refusal = closed.rcvd.code if closed.rcvd is not None else None
        if refusal != 4008:
            raise AssertionError(f"handshake closed with {refusal}, expected 4008")
