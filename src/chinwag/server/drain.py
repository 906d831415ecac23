"""Draining: what a stopping node still owes the requests it already took.

On SIGTERM the server stops accepting connections, then :meth:`Drain.start` flips the node
into draining: ``/readyz`` answers 503, and WebSocket requests that arrive from then on are
refused with ``service_unavailable`` (the device resends them after reconnecting
elsewhere). Requests already being answered are counted by :meth:`Drain.track`;
:meth:`Drain.idle` waits for them, so each one's response (a message's acknowledgement)
is queued before the sockets are closed with 1001. Every acknowledgement is sent only after
its transaction committed, so whatever the timing, nothing acknowledged is lost; draining
makes sure that what was committed is also acknowledged, sparing the device a resend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["Drain"]


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the enclosed work as in flight."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        self.draining = True

    async def idle(self, within: float) -> bool:
        """Wait until nothing is in flight, at most ``within`` seconds; whether it was."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True
