"""Issue #9: the limits that keep one client from costing the server without bound."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from chinwag.server.settings import Settings
from tests.server.test_websocket import (
    close_of,
    create_conversation,
    open_device,
    send_rest,
    sign_in,
)
from tests.support import (
    AppFixture,
    RawWebSocket,
    RunningServer,
    deflate_bomb,
    frame_head,
    make_app,
    peak_rss,
    reset_peak_rss,
    run_server,
    vm_rss,
)


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


# -- connection-level limits (uvicorn's, set by serving.uvicorn_config) -------------------
# They do not touch storage, so they run on SQLite only.


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", auth_rate_per_second=0)


async def _eof(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    """Everything until the server closes the connection (bounded)."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def test_a_partial_header_or_silence_is_closed_after_the_request_timeout(
    sqlite_settings: Settings,
) -> None:
    sqlite_settings.request_timeout = 0.5
    async with run_server(sqlite_settings) as server:
        app = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as client:
            alice = await sign_in(client, app, "alice", server.clock.now())
            device = await open_device(server, alice.token)  # sockets are not timed out
            port = int(server.url.rsplit(":", 1)[1])
            partial_reader, partial = await asyncio.open_connection("127.0.0.1", port)
            partial.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthor")
            silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)
            assert await _eof(partial_reader) == b""
            assert await _eof(silent_reader) == b""
            # A keep-alive connection: a whole request is answered, a half one is closed.
            kept_reader, kept = await asyncio.open_connection("127.0.0.1", port)
            kept.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await kept_reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 401")
            kept.write(b"GET /v1/me HTTP/1.1\r\nHo")
            assert b"HTTP/1.1" not in (await _eof(kept_reader)).split(b"\r\n\r\n", 1)[-1]
            pong = await device.request("ping", {})
            assert pong["ok"] is True
            await device.ws.close()
            for writer in (partial, silent, kept):
                writer.close()


async def test_connections_past_the_cap_get_503_websocket_upgrades_included(
    sqlite_settings: Settings,
) -> None:
    sqlite_settings.max_connections = 2
    async with run_server(sqlite_settings) as server:
        app = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as client:  # connection 1
            alice = await sign_in(client, app, "alice", server.clock.now())
            device = await open_device(server, alice.token)  # connection 2
            with pytest.raises(InvalidStatus) as refused:
                await open_device(server, alice.token)
            response = refused.value.response
            assert response.status_code == 503
            assert orjson.loads(response.body)["error"]["id"] == "service_unavailable"
            async with httpx.AsyncClient(base_url=server.url) as other:
                assert (await other.get("/v1/me")).status_code == 503
        await device.ws.close()  # the HTTP client's connection is gone too: room again
        async with asyncio.timeout(10):
            while server.services.hub.connection_count():
                await asyncio.sleep(0.01)
        again = await open_device(server, alice.token)
        await again.ws.close()


SIXTEEN_MB = 16 * 1024 * 1024


@pytest.mark.parametrize("deflate", [False, True], ids=["deflate_off", "deflate_on"])
async def test_a_16_mb_frame_and_a_compression_bomb_are_refused_without_memory_growth(
    sqlite_settings: Settings, deflate: bool
) -> None:
    sqlite_settings.ws_per_message_deflate = deflate
    assert sqlite_settings.ws_max_size == 144 * 1024
    async with run_server(sqlite_settings) as server:
        app = await make_app(server.services)
        async with httpx.AsyncClient(base_url=server.url) as client:
            alice = await sign_in(client, app, "alice", server.clock.now())
        url = f"{server.ws_url}/v1/websocket"
        bomb = deflate_bomb(SIXTEEN_MB)
        reset_peak_rss()
        before = vm_rss()
        large = await RawWebSocket.open(url, alice.token, compress=True)
        accepted = large.response.headers.get("Sec-WebSocket-Extensions")
        assert (accepted is not None) is deflate
        await large.send_raw(frame_head(SIXTEEN_MB) + bytes(64 * 1024))
        assert (await large.closed())[0] == 1009
        bombed = await RawWebSocket.open(url, alice.token, compress=True)
        await bombed.send_raw(frame_head(len(bomb), compressed=True) + bomb)
        # Not negotiated, a compressed frame is a protocol error; negotiated, it inflates
        # only up to the limit.
        assert (await bombed.closed())[0] == (1009 if deflate else 1002)
        assert peak_rss() - before < 4 * 1024 * 1024
