"""Attack family 4: sockets that never read while large messages flow to them.

Documented (docs/protocol.md "Limits"): at most 1,000 frames or 4 MiB wait to go out on one
socket; past either it is closed with 4008 ``resume_later`` (it resumes from its cursor), so
a reader that stalls costs bounded memory and slows nobody else.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.abuse.conftest import Figures, LegitChat, Socket, Target, tally
from tests.support import RawWebSocket

STALLED = 6  # under the 8 sockets a session may hold
BODY = "x" * 60_000  # under the 64 KiB a message may carry


async def test_slow_readers_while_large_messages_flow_to_them(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    reader = await target.sign_in(http, "mallory")
    writer = await target.sign_in(http, "mallory")  # the same user's other device
    conversation_id = await target.conversation(http, writer, ["mallory-alt"])
    url = f"{target.ws_url}/v1/websocket"
    stalled = [await RawWebSocket.open(url, reader.token, rcvbuf=4096) for _ in range(STALLED)]
    sender = await Socket.open(target, writer)
    closes = [asyncio.create_task(s.closed(timeout=20)) for s in stalled]
    async with chat.during():
        start = time.monotonic()
        while not all(c.done() for c in closes) and time.monotonic() - start < 8:
            parts = [{"mime_type": "text/plain", "body": BODY}]
            data = {"conversation_id": conversation_id, "id": str(uuid.uuid4()), "parts": parts}
            await sender.send("message.send", data)
            await asyncio.sleep(0)  # the stalled sockets' close tasks get to run
        counts = tally(figures, await sender.answered())
        codes = await asyncio.gather(*closes)
    await sender.close()
    figures.refused("4008", sum(1 for code in codes if code == (4008, "resume_later")))
    assert codes == [(4008, "resume_later")] * STALLED
    assert counts.get("ok", 0) < 1000  # the 4 MiB bound acted, not the 1,000-frame one
    chat.assert_unharmed()
