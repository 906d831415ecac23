"""The in-process broker: one node, so there is no other node to ring."""

from __future__ import annotations

from chinwag.server.broker.base import Doorbell, Listener

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Publishing is a no-op: ``Services.publish`` already delivered to this node."""

    connected = True
    state = "local"
    """For ``/readyz``: one process, nothing to lose."""

    async def start(self, listener: Listener) -> None:
        pass

    def publish(self, message: Doorbell) -> None:
        pass

    async def close(self) -> None:
        pass
