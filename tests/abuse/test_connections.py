"""Attack family 1: holding connections — idle and half-sent requests, and one session
opening WebSockets by the thousand.

Documented (docs/protocol.md "Limits"): a request must arrive whole within
``request_timeout`` (10 s) of connecting or of its first byte, or the connection is closed
unanswered; a session may hold 8 sockets on a node, a user 32, and the next is closed with
4029 ``too_many_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.abuse.conftest import Figures, LegitChat, Target, User

REQUEST_TIMEOUT = 10.0
SOCKETS = 1000
"""Opened by one session, two at a time: 125 times what it may hold. (Registration is O(1)
and each refused socket is closed at once, so more would only make the suite longer.)"""


async def _held(target: Target, n: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    if n % 2:  # half send a partial header, the other half nothing at all
        writer.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthoriz")
    return reader, writer


async def _closed_after(reader: asyncio.StreamReader, opened: float) -> float:
    """Seconds from opening until the server closed the connection, having answered nothing."""
    async with asyncio.timeout(REQUEST_TIMEOUT + 8):
        assert await reader.read() == b""
    return time.monotonic() - opened


async def test_1100_idle_and_partial_header_connections(
    target: Target, chat: LegitChat, figures: Figures
) -> None:
    async with chat.during():
        opened = time.monotonic()
        held = [await _held(target, n) for n in range(1100)]
        figures.attacker_sent = len(held)
        lifetimes = await asyncio.gather(*(_closed_after(r, opened) for r, _ in held))
    for _, writer in held:
        writer.close()
    figures.refused("closed unanswered", len(lifetimes))
    assert len(lifetimes) == 1100
    assert max(lifetimes) < REQUEST_TIMEOUT + 8, max(lifetimes)
    assert min(lifetimes) > REQUEST_TIMEOUT - 1, min(lifetimes)
    chat.assert_unharmed()


async def _one_socket(target: Target, user: User) -> tuple[int | None, object]:
    """Open a socket; its close code if the server closed it at once, else (None, socket)."""
    ws = await connect(f"{target.ws_url}/v1/websocket", additional_headers=user.headers)
    try:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "hello"
        while True:  # a kept socket says caught_up and then nothing
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.2))
            assert frame["type"] == "caught_up", frame
    except TimeoutError:
        return None, ws  # still open: one of the sockets the session may hold
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
    assert rcvd is not None
    return rcvd.code, rcvd.reason


async def test_one_session_opening_thousands_of_websockets(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    outcomes: list[tuple[int | None, object]] = []

    async def opener(count: int) -> None:
        for _ in range(count):
            with contextlib.suppress(InvalidStatus):
                outcomes.append(await _one_socket(target, mallory))

    async with chat.during():
        await asyncio.gather(*(opener(SOCKETS // 2) for _ in range(2)))  # two at a time
    kept = [ws for code, ws in outcomes if code is None]
    refused = [(code, reason) for code, reason in outcomes if code is not None]
    figures.attacker_sent = len(outcomes)
    figures.refused(4029, len(refused))
    assert len(outcomes) == SOCKETS
    assert len(kept) <= 8
    assert set(refused) == {(4029, "too_many_connections")}
    for ws in kept:
        await ws.close()  # type: ignore[attr-defined]
    chat.assert_unharmed()
