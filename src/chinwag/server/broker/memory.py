"""The in-process broker: one node, doorbells delivered synchronously in publish order."""

from __future__ import annotations

from chinwag.server.broker.base import Doorbell, Listener

__all__ = ["MemoryBroker"]


class MemoryBroker:
    def __init__(self) -> None:
        self._listener: Listener | None = None

    async def start(self, listener: Listener) -> None:
        self._listener = listener

    def publish(self, message: Doorbell) -> None:
        if self._listener is not None:
            self._listener(message)

    async def close(self) -> None:
        self._listener = None
