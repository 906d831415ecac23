"""Redis pub/sub broker for several nodes sharing one database.

Publishing is fire-and-forget through a bounded queue drained by one task; a lost doorbell
only delays delivery until the connection's next gap check, it never loses an event.
When the subscription drops (Redis restarts, the network blips) the receiver resubscribes
with back-off and then hands the listener a local :class:`Resync`, so every connection on
this node checks the store for whatever was announced while the node was deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from chinwag.server.broker.base import Doorbell, Listener, Resync, decode, encode

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)


class RedisBroker:
    min_retry = 0.1
    max_retry = 5.0

    def __init__(self, url: str, *, channel: str, queue_size: int = 10_000) -> None:
        self._url = url
        self._channel = channel
        self._client: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, listener: Listener) -> None:
        self._client = aioredis.from_url(self._url, client_name=self._channel)
        pubsub = await self._subscribe()
        self._tasks = [
            asyncio.create_task(self._receive(pubsub, listener)),
            asyncio.create_task(self._send()),
        ]

    async def _subscribe(self) -> aioredis.client.PubSub:
        assert self._client is not None
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self._channel)
        return pubsub

    async def _receive(self, pubsub: aioredis.client.PubSub, listener: Listener) -> None:
        delay = self.min_retry
        while True:
            try:
                await self._listen(pubsub, listener)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("doorbell subscription lost (%s); resubscribing", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)
                try:
                    pubsub = await self._subscribe()
                    break
                except Exception:
                    log.warning("Redis unreachable; retrying in %.1f s", delay)
            delay = self.min_retry
            try:
                listener(Resync())
            except Exception:
                log.exception("resync after resubscribing failed")

    async def _listen(self, pubsub: aioredis.client.PubSub, listener: Listener) -> None:
        async for item in pubsub.listen():
            if item.get("type") == "message":
                try:
                    listener(decode(item["data"]))
                except Exception:
                    log.exception("dropping an undecodable doorbell")
        raise ConnectionError("the subscription ended")

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
