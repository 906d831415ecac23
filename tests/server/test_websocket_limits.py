"""Issue #9: the limits that keep one client from costing the server without bound."""

from __future__ import annotations

import httpx

from tests.server.test_websocket import create_conversation, send_rest, sign_in
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
