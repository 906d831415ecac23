"""Attack family 4: sockets that never read while large messages flow to them.

Documented (docs/protocol.md "Limits"): at most 1,000 frames or 4 MiB wait to go out on one
socket; past either it is closed with 4008 ``resume_later`` (it resumes from its cursor), so
a reader that stalls costs bounded memory and slows nobody else.

The stalled sockets read nothing at all while the messages flow (a 4 KiB kernel receive
buffer, so they push back on the server at once); only when the attack is over do they read
what reached them, to the close frame. Far fewer messages are delivered than the frame
bound (:data:`DELIVERED` < 1,000), yet many times more bytes than the byte bound and every
buffer on the way can hold: a 4008 can then only come from the byte bound, and without it
each stalled socket's queue would hold every message.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.abuse.attacker import Socket, tally
from tests.abuse.conftest import ALSO_ON_POSTGRES, Figures, LegitChat, Target
from tests.support import RawWebSocket

STALLED = 6  # under the 8 sockets a session may hold
BODY = "x" * 60_000  # under the 64 KiB a message may carry
DELIVERED = 250
"""Messages accepted for the stalled sockets: ~15 MB each, over the 4 MiB queue plus the
kernel's send buffer (at most 4 MiB, ``net.ipv4.tcp_wmem``) and the transport's, yet a
quarter of the 1,000-frame bound."""


async def _flood(sender: Socket, conversation_id: str, figures: Figures) -> None:
    """Send large messages as fast as the message rate limit lets them through until
    DELIVERED are accepted: each round goes out at full speed, and the ``retry_after`` of
    its 429s is waited out before the next. That is the flood that gets the most bytes to
    the stalled sockets soonest. Sending on through the 429s instead kept the server
    parsing refused 60 KB frames; on a loaded machine that made the flood last over 40 s,
    and the stalled sockets, which answer no ping, were closed for that (1011, keepalive)
    before their queues reached the byte bound."""
    parts = [{"mime_type": "text/plain", "body": BODY}]
    counts: dict[str, int] = {}
    while counts.get("ok", 0) < DELIVERED:
        answered = len(sender.responses)
        for _ in range(DELIVERED - counts.get("ok", 0)):
            data = {"conversation_id": conversation_id, "id": str(uuid.uuid4()), "parts": parts}
            await sender.send("message.send", data)
        await sender.answered()
        counts = {}
        for frame in sender.responses:
            outcome = "ok" if frame["ok"] else frame["error"]["id"]
            counts[outcome] = counts.get(outcome, 0) + 1
        waits = [
            float(frame["error"]["data"]["retry_after"])
            for frame in sender.responses[answered:]
            if not frame["ok"] and frame["error"]["id"] == "rate_limited"
        ]
        if waits and counts.get("ok", 0) < DELIVERED:
            await asyncio.sleep(min(max(waits), 5.0))
    tally(figures, sender.responses)


@ALSO_ON_POSTGRES
async def test_slow_readers_while_large_messages_flow_to_them(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    reader = await target.sign_in(http, "mallory")
    writer = await target.sign_in(http, "mallory")  # the same user's other device
    conversation_id = await target.conversation(http, writer, ["mallory-alt"])
    url = f"{target.ws_url}/v1/websocket"
    stalled = [await RawWebSocket.open(url, reader.token, rcvbuf=4096) for _ in range(STALLED)]
    sender = await Socket.open(target, writer)
    async with chat.during():
        await _flood(sender, conversation_id, figures)
        # Only now do the stalled sockets read: what got through, then the close frame.
        codes = await asyncio.gather(*(s.closed(timeout=20) for s in stalled))
    await sender.close()
    figures.refused("4008", sum(1 for code in codes if code == (4008, "resume_later")))
    assert codes == [(4008, "resume_later")] * STALLED
    chat.assert_unharmed()
