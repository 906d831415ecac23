"""Redis pub/sub broker for several nodes sharing one database.

Publishing is fire-and-forget through a bounded queue drained by one task; a lost doorbell
only delays delivery until the connection's next gap check, it never loses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from chinwag.server.broker.base import Doorbell, Listener, decode, encode

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)


class RedisBroker:
    def __init__(self, url: str, *, channel: str, queue_size: int = 10_000) -> None:
        self._url = url
        self._channel = channel
        self._client: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, listener: Listener) -> None:
        self._client = aioredis.from_url(self._url)
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self._channel)
        self._tasks = [
            asyncio.create_task(self._receive(pubsub, listener)),
            asyncio.create_task(self._send()),
        ]

    async def _receive(self, pubsub: aioredis.client.PubSub, listener: Listener) -> None:
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    try:
                        listener(decode(item["data"]))
                    except Exception:
                        log.exception("dropping an undecodable doorbell")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _send(self) -> None:
        assert self._client is not None
        while True:
            raw = await self._outbox.get()
            try:
                await self._client.publish(self._channel, raw)
            except Exception:
                log.warning("doorbell publish failed; readers will catch up from the store")

    def publish(self, message: Doorbell) -> None:
        try:
            self._outbox.put_nowait(encode(message))
        except asyncio.QueueFull:
            log.warning("doorbell queue full; readers will catch up from the store")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
