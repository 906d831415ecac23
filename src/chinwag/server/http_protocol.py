"""The HTTP protocol chinwag runs under uvicorn: httptools', plus the two limits it lacks.

uvicorn closes an *idle* keep-alive connection (``timeout_keep_alive``), but a connection
that is in the middle of sending a request is never timed out: a client that sends half a
header and stops (slowloris) holds its socket and file descriptor for ever. Here every
request must arrive whole, headers and body, within ``request_timeout`` seconds of its
first byte (of the connection opening, for the first one); otherwise the connection is
closed.

uvicorn's ``limit_concurrency`` answers a request over the cap with 503, but a WebSocket
upgrade returns before that check, so sockets (the long-lived connections, the ones worth
capping) were never refused. Here an upgrade over the cap gets the same 503, as the JSON
error every chinwag endpoint answers with.

uvicorn takes the protocol class as its public ``http=`` option; this subclass overrides
only httptools' parser callbacks and uvicorn's upgrade and connection hooks.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chinwag.core.errors import ServiceUnavailable

__all__ = ["GuardedHttpProtocol", "guarded_http_protocol"]


def _over_capacity_response() -> bytes:
    error = ServiceUnavailable("This server has as many connections open as it allows.")
    body = orjson.dumps(error.to_json())
    head = (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"content-type: application/json\r\n"
        b"retry-after: 5\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


_OVER_CAPACITY = _over_capacity_response()


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline per request and capped WebSocket upgrades."""

    request_timeout: ClassVar[float] = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a keep-alive connection

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= limit:
            self.logger.warning("Exceeded concurrency limit; refusing a WebSocket upgrade.")
            self.transport.write(_OVER_CAPACITY)
            self.transport.close()
            return
        super().handle_websocket_upgrade()
        # The socket is the WebSocket protocol's now and this one never hears of it again
        # (no connection_lost, where uvicorn drops the parser). The parser holds this
        # protocol's bound methods: a reference cycle that only the garbage collector
        # would free, with the transport and socket hanging off it, once per WebSocket.
        self.parser = None  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_http_protocol(request_timeout: float) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's ``http=``, with this request deadline."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"request_timeout": request_timeout})
