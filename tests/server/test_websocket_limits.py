"""Issue #9: the limits that keep one client from costing the server without bound."""

from __future__ import annotations

import asyncio

import httpx

from tests.server.test_websocket import (
    close_of,
    create_conversation,
    open_device,
    send_rest,
    sign_in,
)
from tests.support import AppFixture, RawWebSocket, RunningServer


async def test_a_socket_that_stops_reading_is_closed_4008_once_its_queued_bytes_pass_the_bound(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    server.settings.connection_queue_bytes = 256 * 1024  # frames bound stays at 1,000
    now = server.clock.now()
    alice, bob = await sign_in(client, app, "alice", now), await sign_in(client, app, "bob", now)
    conversation_id = await create_conversation(client, alice, ["bob"])
    stalled = await RawWebSocket.open(f"{server.ws_url}/v1/websocket", bob.token, rcvbuf=4096)
    hub, session_id = server.services.hub, bob.body["session_id"]
    assert hub.sockets_of_session(session_id) == 1
    sent = 0
    while hub.sockets_of_session(session_id) and sent < 200:
        await send_rest(client, alice, conversation_id, "x" * 60_000)
        sent += 1
    assert hub.sockets_of_session(session_id) == 0, "never closed"
    assert sent < 200  # far fewer frames than the 1,000-frame bound: the bytes bound acted
    assert await stalled.closed() == (4008, "resume_later")


async def test_sockets_past_the_per_session_and_per_user_caps_are_closed_4029(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    server.settings.max_sockets_per_session, server.settings.max_sockets_per_user = 2, 3
    now = server.clock.now()
    phone, laptop = (
        await sign_in(client, app, "alice", now),
        await sign_in(client, app, "alice", now),
    )
    on_phone = [await open_device(server, phone.token) for _ in range(2)]
    refused = (4029, "too_many_connections")
    assert await close_of(server, "", Authorization=f"Bearer {phone.token}") == refused
    on_laptop = await open_device(server, laptop.token)  # a third socket for the user
    assert await close_of(server, "", Authorization=f"Bearer {laptop.token}") == refused
    bob = await sign_in(client, app, "bob", now)  # other users are not counted
    await (await open_device(server, bob.token)).ws.close()
    await on_phone[0].ws.close()
    await on_phone[0].ws.wait_closed()
    async with asyncio.timeout(10):  # the server unregisters once it sees the close
        while server.services.hub.sockets_of_session(phone.body["session_id"]) > 1:
            await asyncio.sleep(0.01)
    again = await open_device(server, phone.token)
    for device in (again, on_phone[1], on_laptop):
        await device.ws.close()
