"""Running the app under uvicorn: its configuration from Settings, and a WebSocket-aware
graceful shutdown.

:func:`uvicorn_config` is the one place the connection-level limits are set (the CLI and
the tests both call it): the request deadline and the upgrade cap of
:mod:`chinwag.server.http_protocol`, the connection cap, the WebSocket message size limit
and permessage-deflate.

uvicorn closes every open WebSocket with 1012 ("service restart") *before* the app's
lifespan shutdown runs, so closing sockets from the lifespan is too late for the protocol's
1001 "going away". :class:`ChinwagServer` closes them first: it stops accepting, drains
(new requests refused with 503, those in flight answered: ``drain.py``), asks the hub to
close every live connection with 1001 behind its queued answers, waits (bounded by
``Settings.shutdown_timeout``) for the close frames to go out, then lets uvicorn finish as
usual.

With ``freeze_heap`` (``chinwag serve`` sets it), once started it collects and freezes the
heap (:func:`gc.freeze`): the ~150,000 objects of the imported libraries and the app then
sit in the permanent generation, so a full collection scans only what requests created
since. Unfrozen, each full collection took ~100 ms of the event loop (several hundred on a
busy machine) and was what pushed the legitimate users' latency over 100 ms under load in
``tests/abuse``.

Freezing once was not enough with thousands of sockets: they connect after the start, and a
full collection walked all their objects, ~1.4 s with 12,000 sockets (bench/README.md,
issue #10). So the server collects and freezes again every ``Settings.gc_refreeze_interval``
seconds, and collects the whole heap every ``Settings.gc_full_interval`` seconds so that no
garbage cycle stays frozen for ever: :mod:`chinwag.server.heap` says why these two and what
they cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

import uvicorn

from chinwag.server.heap import freeze_pass, keep_frozen
from chinwag.server.http_protocol import guarded_http_protocol
from chinwag.server.log_format import json_logging_config
from chinwag.server.settings import Settings
from chinwag.server.ws_protocol import CycleFreeWebSocketProtocol

if TYPE_CHECKING:
    from chinwag.server.services import Services

__all__ = ["ChinwagServer", "uvicorn_config"]

log = logging.getLogger("chinwag.serving")


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` from ``settings``; ``options`` override or add
    uvicorn options (``loop``, ``lifespan``, ...)."""
    config: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "http": guarded_http_protocol(settings.request_timeout),
        "ws": CycleFreeWebSocketProtocol,
        # uvicorn counts the connection asking, and refuses at the limit: +1 serves
        # ``max_connections`` at once.
        "limit_concurrency": settings.max_connections + 1,
        "ws_max_size": settings.ws_max_size,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        # X-Forwarded-For is believed only from settings.trusted_proxies, by chinwag itself.
        "proxy_headers": False,
        # uvicorn's own bound on in-flight HTTP requests at shutdown (ChinwagServer's
        # _drain_sockets bounds the WebSockets).
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }
    if settings.log_format == "json":
        config["log_config"] = json_logging_config(settings.log_level)
    return uvicorn.Config(app, **(config | options))


class ChinwagServer(uvicorn.Server):
    close_timeout: float = 2.0

    def __init__(self, config: uvicorn.Config, *, freeze_heap: bool = False) -> None:
        """``freeze_heap``: see the module docstring; for a process that serves and
        nothing else (a test process keeps its own garbage collectable)."""
        super().__init__(config)
        self.freeze_heap = freeze_heap
        self._keeping_frozen: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # runs the app's lifespan startup first
        if self.freeze_heap:
            freeze_pass()
            services = self._services()
            settings = services.settings if services is not None else Settings()
            self._keeping_frozen = asyncio.create_task(
                keep_frozen(settings.gc_refreeze_interval, settings.gc_full_interval),
                name="chinwag-keep-frozen",
            )

    def _services(self) -> Services | None:
        services: Services | None = getattr(
            getattr(self.config.app, "state", None), "services", None
        )
        return services

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._keeping_frozen is not None:
            self._keeping_frozen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeping_frozen
            self._keeping_frozen = None
        for server in self.servers:
            server.close()  # stop accepting
        services = self._services()
        if services is not None:
            await self._drain_sockets(services)
        await super().shutdown(sockets)

    async def _drain_sockets(self, services: Services) -> None:
        """Refuse new requests (HTTP and WebSocket), let the ones being answered finish
        and queue their answers, then close every socket with 1001 behind its queued
        frames; requests get ``shutdown_timeout``, queued frames ``close_timeout``, then
        what is still open is closed at once (``drain.py``). uvicorn then closes the idle
        HTTP connections."""
        services.drain.start()
        if not await services.drain.idle(services.settings.shutdown_timeout):
            log.warning("%d requests still in flight at shutdown", services.drain.in_flight)
        services.hub.close_all()  # 1001, behind each socket's queued frames
        with contextlib.suppress(TimeoutError):
            # Short: a device that reads slowly resumes from its cursor anyway.
            await asyncio.wait_for(services.hub.wait_empty(), self.close_timeout)
        services.hub.close_all()  # a second call closes at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(services.hub.wait_empty(), self.close_timeout)
        await asyncio.sleep(0.05)  # let the last close frames reach the transport
