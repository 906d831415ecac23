"""The attacker's side of the abuse suite: a WebSocket sending requests at full speed, and
the tally of what came back."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.abuse.conftest import Figures, Target, User

__all__ = ["Socket", "tally"]


@dataclass
class Socket:
    """The attacker's WebSocket (or an observer's): requests at full speed, frames kept."""

    ws: ClientConnection
    hello: dict[str, Any]
    responses: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _sent: int = 0

    @classmethod
    async def open(cls, target: Target, user: User) -> Socket:
        ws = await connect(f"{target.ws_url}/v1/websocket", additional_headers=user.headers)
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        socket = cls(ws, hello)
        socket._reader = asyncio.create_task(socket._read())
        return socket

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                kept = self.responses if frame["type"] == "response" else self.others
                kept.append(frame)

    async def send(self, method: str, data: dict[str, Any]) -> None:
        self._sent += 1
        request = {"type": "request", "request_id": f"a{self._sent}", "method": method}
        await self.ws.send(orjson.dumps(request | {"data": data}).decode())

    async def answered(self, timeout: float = 20) -> list[dict[str, Any]]:
        """Wait until every request sent has its response (bounded)."""
        async with asyncio.timeout(timeout):
            while len(self.responses) < self._sent and self._reader and not self._reader.done():
                await asyncio.sleep(0.01)
        return self.responses

    @property
    def sent(self) -> int:
        return self._sent

    async def close_by_server(self, timeout: float) -> tuple[int | None, str | None]:
        """Wait (bounded) for the server to close the socket; its close code and reason."""
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return await self.close()

    async def close(self) -> tuple[int | None, str | None]:
        await self.ws.close()
        if self._reader is not None:
            await self._reader
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, None)


def tally(figures: Figures, responses: list[dict[str, Any]]) -> dict[str, int]:
    """Count WebSocket responses by outcome (``ok`` or the error id) into the figures."""
    counts: dict[str, int] = {}
    for frame in responses:
        outcome = "ok" if frame["ok"] else frame["error"]["id"]
        counts[outcome] = counts.get(outcome, 0) + 1
    figures.attacker_sent += len(responses)
    for outcome, count in counts.items():
        if outcome != "ok":
            figures.refused(outcome, count)
    return counts
