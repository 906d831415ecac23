"""Running the app under uvicorn: its configuration from Settings, and a WebSocket-aware
graceful shutdown.

:func:`uvicorn_config` is the one place the connection-level limits are set (the CLI and
the tests both call it): the request deadline and the upgrade cap of
:mod:`chinwag.server.http_protocol`, the connection cap, the WebSocket message size limit
and permessage-deflate.

uvicorn closes every open WebSocket with 1012 ("service restart") *before* the app's
lifespan shutdown runs, so closing sockets from the lifespan is too late for the protocol's
1001 "going away". :class:`ChinwagServer` closes them first: it stops accepting, asks the
hub to close every live connection with 1001, waits briefly for the close frames to go
out, then lets uvicorn finish as usual.

With ``freeze_heap`` (``chinwag serve`` sets it), once started it collects and freezes the
heap (:func:`gc.freeze`): the ~150,000 objects of the imported libraries and the app then
sit in the permanent generation, so a full collection scans only what requests created
since. Unfrozen, each full collection took ~100 ms of the event loop (several hundred on a
busy machine) and was what pushed the legitimate users' latency over 100 ms under load in
``tests/abuse``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from typing import Any

import uvicorn

from chinwag.server.http_protocol import guarded_http_protocol
from chinwag.server.settings import Settings

__all__ = ["ChinwagServer", "uvicorn_config"]


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` from ``settings``; ``options`` override or add
    uvicorn options (``loop``, ``lifespan``, ...)."""
    config: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "http": guarded_http_protocol(settings.request_timeout),
        # uvicorn counts the connection asking, and refuses at the limit: +1 serves
        # ``max_connections`` at once.
        "limit_concurrency": settings.max_connections + 1,
        "ws_max_size": settings.ws_max_size,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        # X-Forwarded-For is believed only from settings.trusted_proxies, by chinwag itself.
        "proxy_headers": False,
    }
    return uvicorn.Config(app, **(config | options))


class ChinwagServer(uvicorn.Server):
    close_timeout: float = 2.0

    def __init__(self, config: uvicorn.Config, *, freeze_heap: bool = False) -> None:
        """``freeze_heap``: see the module docstring; for a process that serves and
        nothing else (a test process keeps its own garbage collectable)."""
        super().__init__(config)
        self.freeze_heap = freeze_heap

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # runs the app's lifespan startup first
        if self.freeze_heap:
            gc.collect()
            gc.freeze()

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
