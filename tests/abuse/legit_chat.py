"""The legitimate users: pairs chatting at a steady rate, in a process of their own.

Run by the abuse tests as ``python -m tests.abuse.legit_chat URL RATE CONVERSATION...``
with the session tokens in ``LEGIT_TOKENS`` (space-separated, two per conversation, not on
the command line). It opens one WebSocket per user, prints ``ready``, then each user sends
RATE messages a second over its socket (``message.send``) to the other user of its
conversation until a line arrives on stdin; it then waits (at most 10 s) for everything
sent to be delivered and prints one JSON line: what each user sent, the sequence numbers
each received from the other, the send -> delivery latencies and any error (a refused
send, a socket the server closed).

Why a separate process: the attacker runs at full speed in the test's event loop. Measured
there, a legitimate message's latency would include the attacker's own client starving the
loop; here it is the server's doing (and the machine's) only.

Why several pairs: a real user stays within the documented limits (1,000 messages a minute
per session), so the samples a p99 needs come from several pairs rather than from one pair
sending faster than any person.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["main"]

DRAIN_SECONDS = 10.0


@dataclass
class Peer:
    """One user's socket: sends numbered messages, records what arrives from the other."""

    name: str
    ws: ClientConnection
    conversation_id: str
    sent: int = 0
    received: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: int = 0
    closing: bool = False

    async def send(self) -> None:
        body = orjson.dumps({"seq": self.sent, "t": time.perf_counter()}).decode()
        data = {
            "conversation_id": self.conversation_id,
            "id": str(uuid.uuid4()),
            "parts": [{"mime_type": "text/plain", "body": body}],
        }
        request = {
            "type": "request",
            "request_id": f"{self.name}{self.sent}",
            "method": "message.send",
            "data": data,
        }
        self.sent += 1
        await self.ws.send(orjson.dumps(request).decode())

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                self._frame(orjson.loads(raw), time.perf_counter())
        except ConnectionClosed as closed:
            if not self.closing:
                self.errors.append(f"{self.name}: socket closed {closed.rcvd}")

    def _frame(self, frame: dict[str, Any], now: float) -> None:
        if frame["type"] == "response":
            self.answered += 1
            if not frame["ok"]:
                self.errors.append(f"{self.name}: send refused {frame['error']}")
        elif frame["type"] == "event" and frame["event"]["type"] == "message.created":
            message = frame["event"]["data"]["message"]
            if message["conversation_id"] != self.conversation_id:
                return
            if message["sender_id"] == self.name:
                return
            body = orjson.loads(message["parts"][0]["body"])
            self.received.append(body["seq"])
            self.latencies.append((now - body["t"]) * 1000)
            self.sent_at.append(body["t"])


async def _open(url: str, token: str, conversation_id: str) -> Peer:
    ws = await connect(
        f"{url}/v1/websocket", additional_headers={"Authorization": f"Bearer {token}"}
    )
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    return Peer(hello["user"]["user_id"], ws, conversation_id)


async def _pace(peer: Peer, rate: float, offset: float, stop: asyncio.Event) -> None:
    """Send on an absolute schedule, so a slow server does not slow the offered load.

    ``offset`` spreads the peers' schedules over one period. In lockstep, every peer sent
    in the same millisecond, so one stall of the machine delayed all of them alike and the
    p99 of 400 messages was the single worst tick: one hiccup decided the test."""
    start = time.perf_counter() + offset
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), offset)
    while not stop.is_set():
        await peer.send()
        delay = start + peer.sent / rate - time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(delay, 0))


async def _drained(pairs: list[tuple[Peer, Peer]]) -> None:
    async with asyncio.timeout(DRAIN_SECONDS):
        for a, b in pairs:
            while (
                len(a.received) < b.sent
                or len(b.received) < a.sent
                or (a.answered < a.sent or b.answered < b.sent)
            ):
                await asyncio.sleep(0.01)


async def run(url: str, conversations: list[str], tokens: list[str], rate: float) -> dict[str, Any]:
    pairs = [
        (await _open(url, tokens[2 * n], cid), await _open(url, tokens[2 * n + 1], cid))
        for n, cid in enumerate(conversations)
    ]
    peers = [peer for pair in pairs for peer in pair]
    readers = [asyncio.create_task(peer.read()) for peer in peers]
    print("ready", flush=True)
    stop = asyncio.Event()
    period = 1 / rate / len(peers)
    senders = [
        asyncio.create_task(_pace(peer, rate, n * period, stop)) for n, peer in enumerate(peers)
    ]
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    await asyncio.gather(*senders)
    errors: list[str] = []
    try:
        await _drained(pairs)
    except TimeoutError:
        errors.append(f"not delivered within {DRAIN_SECONDS} s of the end")
    for peer in peers:
        peer.closing = True
        await peer.ws.close()
    await asyncio.gather(*readers)
    return {
        "sent": {peer.name: peer.sent for peer in peers},
        "received": {peer.name: peer.received for peer in peers},
        "latencies_ms": [ms for peer in peers for ms in peer.latencies],
        "sent_at": [t for peer in peers for t in peer.sent_at],
        "errors": errors + [error for peer in peers for error in peer.errors],
    }


def main() -> None:
    url, rate, *conversations = sys.argv[1:]
    tokens = os.environ["LEGIT_TOKENS"].split()
    result = asyncio.run(run(url, conversations, tokens, float(rate)))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
