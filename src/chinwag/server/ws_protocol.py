"""The WebSocket protocol chinwag runs under uvicorn: uvicorn's own (websockets' sans-I/O
core), minus the reference cycle each closed socket left behind.

websockets' ``Protocol`` keeps its frame parser as a generator in ``self.parser``; the
generator's frame holds the protocol, and it stays suspended after the connection ends (its
last step is a bare ``yield``). So every closed WebSocket was a cycle (protocol, parser,
buffers, the uvicorn protocol around them) that only the garbage collector frees, and that
it cannot free at all once :mod:`chinwag.server.heap` has frozen it. Closing the generator
when the connection is lost ends the cycle: the socket's objects go by reference counting.

uvicorn takes the protocol class as its public ``ws=`` option. ``parser`` is websockets'
attribute, not documented API: ``tests/server/test_heap_cycles.py`` fails if a websockets
release moves it (a closed socket then leaves a cycle again).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["CycleFreeWebSocketProtocol"]


class CycleFreeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol that ends websockets' parser when the
    connection is lost."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        parser = getattr(self.conn, "parser", None)
        if parser is not None:
            parser.close()  # no data can arrive any more: nothing is left to parse
