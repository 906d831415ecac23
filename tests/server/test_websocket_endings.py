"""How sockets end: log-out (4003), expiry (4004), falling behind (4008), shutdown (1001)."""

from __future__ import annotations

import httpx

from chinwag.server.settings import Settings
from tests.server.test_websocket import (
    append_silently,
    create_conversation,
    open_device,
    send_rest,
    sign_in,
    user_pk_of,
)
from tests.support import AppFixture, RunningServer, make_app, run_server


async def test_log_out_sends_session_revoked_then_closes_4003(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    now = server.clock.now()
    phone, laptop = (
        await sign_in(client, app, "alice", now),
        await sign_in(client, app, "alice", now),
    )
    on_phone, on_laptop = (
        await open_device(server, phone.token),
        await open_device(server, laptop.token),
    )
    assert (await client.delete("/v1/sessions/current", headers=phone.headers)).status_code == 204
    assert await on_phone.closed() == (4003, "session_revoked")
    assert on_phone.events[-1] == {
        "type": "session.revoked",
        "at": now,
        "data": {"session_id": phone.body["session_id"], "reason": "logout"},
    }
    await on_laptop.until_cursor(on_phone.cursor)
    assert on_laptop.events[-1]["data"]["session_id"] == phone.body["session_id"]
    assert not on_laptop.ws.close_code  # the other session stays open
    await on_laptop.ws.close()


async def test_expiry_sends_session_revoked_then_closes_4004(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    server.clock.set(alice.body["expires_at"] + 1)
    assert await device.closed() == (4004, "session_expired")
    assert device.events[-1]["type"] == "session.revoked"
    assert device.events[-1]["data"] == {
        "session_id": alice.body["session_id"],
        "reason": "expired",
    }
    again = await client.get("/v1/me", headers=alice.headers)
    assert again.status_code == 401


async def test_a_device_that_falls_behind_is_told_to_resume_later(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    server.settings.connection_queue_size = 4
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    doorbells = await append_silently(server, app.app_id, await user_pk_of(server, alice), 20)
    for doorbell in doorbells:  # twenty live offers in one tick: more than the queue holds
        server.services.publish(doorbell)
    code, reason = await device.closed()
    assert (code, reason) == (4008, "resume_later")
    assert device.cursor < 20
    resumed = await open_device(server, alice.token, after=device.cursor)
    await resumed.until_caught_up()
    assert resumed.cursor == 20
    await resumed.ws.close()


async def test_graceful_shutdown_closes_sockets_with_1001(settings: Settings) -> None:
    async with run_server(settings) as server:
        app = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as client:
            alice = await sign_in(client, app, "alice", server.clock.now())
            conversation_id = await create_conversation(client, alice, ["bob"])
            device = await open_device(server, alice.token, after=0)
            await send_rest(client, alice, conversation_id, "before shutdown")
            await device.until_cursor(2)
    assert await device.closed() == (1001, "going_away")
