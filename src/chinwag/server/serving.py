"""Running the app under uvicorn with a WebSocket-aware graceful shutdown.

uvicorn closes every open WebSocket with 1012 ("service restart") *before* the app's
lifespan shutdown runs, so closing sockets from the lifespan is too late for the protocol's
1001 "going away". :class:`ChinwagServer` closes them first: it stops accepting, asks the
hub to close every live connection with 1001, waits briefly for the close frames to go
out, then lets uvicorn finish as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

__all__ = ["ChinwagServer"]


class ChinwagServer(uvicorn.Server):
    close_timeout: float = 2.0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        state = getattr(self.config.app, "state", None)
        services = getattr(state, "services", None)
        if services is not None:
            services.hub.close_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(services.hub.wait_empty(), self.close_timeout)
            await asyncio.sleep(0.05)  # let the last close frames reach the transport
        await super().shutdown(sockets)
