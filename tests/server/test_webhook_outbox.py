"""The outbox under concurrency and the bookkeeping push relies on, on SQLite and
PostgreSQL: two workers on one database send each delivery once; a device's online lease
follows its socket; ending a session forgets its push token; a rolled-back change leaves
nothing in the outbox; a send retried with its id owes the outside world nothing more."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from chinwag.server.handlers.sessions import revoke_user_sessions
from chinwag.server.settings import Settings
from chinwag.server.storage.events import append_event
from chinwag.server.storage.schema import push_jobs, push_tokens, webhook_outbox
from chinwag.server.storage.users import get_user
from chinwag.server.webhooks.sender import Sender
from chinwag.server.webhooks.worker import WebhookWorker
from tests.support import (
    ADMIN,
    AppFixture,
    RawWebSocket,
    Receiver,
    RunningServer,
    eventually,
    hook_settings,
    login,
    send,
    start,
)

pytestmark = pytest.mark.usefixtures("platform_admin")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url, webhook_workers=False, webhook_concurrency=4)


async def _online_until(server: RunningServer, session_id: str) -> float | None:
    async with server.services.db.read() as conn:
        found = await conn.execute(
            select(push_tokens.c.online_until).where(push_tokens.c.session_id == session_id)
        )
        row = found.first()
    return None if row is None else float(row[0])


async def test_two_workers_on_one_database_send_each_delivery_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    async with Receiver() as receiver:
        answer = await client.post(
            f"/v1/platform/apps/{app.app_id}/webhooks",
            json={"url": receiver.url, "event_types": ["message.created"]},
            headers=ADMIN,
        )
        assert answer.status_code == 201
        conv = await start(client, alice, "bob")
        for n in range(20):
            await send(client, alice, conv, f"m{n}")
        senders = [Sender(timeout=5, allow_loopback=True), Sender(timeout=5, allow_loopback=True)]
        workers = [WebhookWorker(server.services, s) for s in senders]
        while len(receiver.answered) < 20:
            sent = await asyncio.gather(*(w.run_once() for w in workers))
            assert sum(sent) > 0 or len(receiver.answered) >= 20
        for sender in senders:
            await sender.close()
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 20
    assert len(set(ids)) == 20


async def test_a_device_is_online_while_its_socket_is_open(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    session = await login(client, app, "bob", server.clock.now())
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    body = {"kind": "fcm", "token": "tok"}
    assert (await client.post("/v1/push_tokens", json=body, headers=headers)).status_code == 204
    now = server.clock.now()
    socket = await RawWebSocket.open(f"{server.ws_url}/v1/websocket", session["session_token"])
    (session_id,) = server.services.hub.session_ids()

    async def online() -> bool:
        return ((await _online_until(server, session_id)) or 0) > now

    await eventually(online)
    socket.writer.close()

    async def offline() -> bool:
        return (await _online_until(server, session_id)) == 0

    await eventually(offline)


async def test_ending_a_session_forgets_its_push_token(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    session = await login(client, app, "bob", server.clock.now())
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    body = {"kind": "fcm", "token": "tok"}
    assert (await client.post("/v1/push_tokens", json=body, headers=headers)).status_code == 204

    async def count() -> int:
        async with server.services.db.read() as conn:
            found = await conn.execute(select(func.count()).select_from(push_tokens))
            return int(found.scalar_one())

    assert await count() == 1
    await revoke_user_sessions(server.services, app.app_id, "bob")
    assert await count() == 0


async def test_a_rolled_back_change_leaves_nothing_to_deliver(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    answer = await client.post(
        f"/v1/platform/apps/{app.app_id}/webhooks",
        json={"url": "https://example.com/hook", "event_types": ["conversation.updated"]},
        headers=ADMIN,
    )
    assert answer.status_code == 201
    me = await client.get("/v1/me", headers=alice)
    user_pk = await _user_pk(server, app.app_id, me.json()["user"]["user_id"])

    class Refused(Exception):
        pass

    async def change_then_refuse() -> None:
        async with server.services.db.transaction() as tx:
            await append_event(
                tx.conn, app_id=app.app_id, event_type="conversation.updated", data={},
                user_pks=[user_pk], now=server.clock.now(),
            )  # fmt: skip
            assert await _outbox_rows(tx.conn) == 1  # written with the change…
            raise Refused

    with pytest.raises(Refused):
        await change_then_refuse()
    async with server.services.db.read() as conn:
        assert await _outbox_rows(conn) == 0  # …and gone with it


async def _user_pk(server: RunningServer, app_id: str, user_id: str) -> int:
    async with server.services.db.read() as conn:
        user = await get_user(conn, app_id, user_id)
    assert user is not None
    return user.pk


async def _outbox_rows(conn: Any) -> int:
    found = await conn.execute(select(func.count()).select_from(webhook_outbox))
    return int(found.scalar_one())


async def test_a_send_retried_with_its_id_writes_its_webhook_row_and_push_job_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    """On PostgreSQL both are written by the message's own statement, only when it
    inserted the message: a retry after a lost answer finds the id taken and writes none."""
    hook = await client.post(
        f"/v1/platform/apps/{app.app_id}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["message.created"]},
        headers=ADMIN,
    )
    assert hook.status_code == 201, hook.text
    gateway = await client.put(
        f"/v1/platform/apps/{app.app_id}/push-gateway",
        json={"url": "http://127.0.0.1:9/push", "include_body": False},
        headers=ADMIN,
    )
    assert gateway.status_code == 200, gateway.text
    bob = await login(client, app, "bob", server.clock.now())
    bob_headers = {"Authorization": f"Bearer {bob['session_token']}"}
    token = await client.post(
        "/v1/push_tokens", json={"kind": "apns", "token": "tok-bob"}, headers=bob_headers
    )
    assert token.status_code == 204, token.text
    conv = await start(client, alice, "bob")
    message = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "hi"}]}
    answers = [
        await client.post(f"/v1/conversations/{conv}/messages", json=message, headers=alice)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 200, 200]
    async with server.services.db.read() as conn:
        hooks = await conn.scalar(
            select(func.count())
            .select_from(webhook_outbox)
            .where(webhook_outbox.c.event_type == "message.created")
        )
        jobs = await conn.scalar(select(func.count()).select_from(push_jobs))
    assert (hooks, jobs) == (1, 1)
