"""Attack family 3: a WebSocket decompression bomb and a 16 MB frame, over and over.

Documented (docs/protocol.md "Limits"): a WebSocket message is at most 144 KiB (close 1009);
permessage-deflate is off by default, so a compressed frame is a protocol error (1002).
Neither may cost the server memory: the frame is refused from its header, the bomb is never
inflated.
"""

from __future__ import annotations

import time

import httpx

from tests.abuse.conftest import Figures, LegitChat, Target
from tests.support import RawWebSocket, deflate_bomb, frame_head

SIXTEEN_MB = 16 * 1024 * 1024
ATTACK_SECONDS = 3.0


async def test_decompression_bombs_and_16_mb_frames(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    url = f"{target.ws_url}/v1/websocket"
    bomb = frame_head(len(deflate_bomb(SIXTEEN_MB)), compressed=True) + deflate_bomb(SIXTEEN_MB)
    big = frame_head(SIXTEEN_MB) + bytes(256 * 1024)  # the header says 16 MB; it never waits
    closes: list[int | None] = []
    before = target.status("VmRSS")
    async with chat.during():
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS:
            sent = big if len(closes) % 2 == 0 else bomb
            socket = await RawWebSocket.open(url, mallory.token, compress=True)
            assert socket.response.headers.get("Sec-WebSocket-Extensions") is None
            await socket.send_raw(sent)
            closes.append((await socket.closed())[0])
    figures.attacker_sent = len(closes)
    for code in set(closes):
        figures.refused(code or "none", closes.count(code))
    assert closes[0::2] == [1009] * len(closes[0::2])  # message too big
    assert closes[1::2] == [1002] * len(closes[1::2])  # compression was never negotiated
    assert len(closes) >= 4
    assert target.status("VmRSS") - before < 32 * 2**20
    chat.assert_unharmed()
