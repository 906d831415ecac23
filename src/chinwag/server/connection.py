"""One live WebSocket's outgoing side: a bounded queue, one writer, and a gap-free cursor.

Every event frame is queued through one rule: it goes out only if its position is the
cursor plus one. Live offers from the hub that fit are queued at once; older ones are
dropped (already sent); a jump means doorbells were missed or reordered, so the connection
reads the missing positions from the store instead. While such a catch-up (or the initial
replay) runs, live offers only raise the position it must reach, so nothing overtakes it.

The hub's offers never wait: when a live frame finds the queue full the device has fallen
behind, and the connection ends itself with 4008 ``resume_later`` rather than grow memory
or slow the hub. Replay and catch-up, which this connection drives itself, wait for room
instead; they are paced by the writer, never by the database (no connection is held
while waiting).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from chinwag.core.events import event_frame
from chinwag.server.storage.events import StoredEvent

__all__ = [
    "CLOSE_AUTHENTICATION",
    "CLOSE_EXPIRED",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL",
    "CLOSE_RESUME_LATER",
    "CLOSE_REVOKED",
    "Close",
    "Connection",
    "ReadPage",
]

log = logging.getLogger("chinwag.ws")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_AUTHENTICATION = 4001
CLOSE_REVOKED = 4003
CLOSE_EXPIRED = 4004
CLOSE_RESUME_LATER = 4008
CLOSE_PROTOCOL = 4400

ReadPage = Callable[[int, int], Awaitable[list[StoredEvent]]]
"""``read_page(after, limit)``: the user's stored events after a position, ascending."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


def _close_for(reason: str) -> Close:
    if reason == "expired":
        return Close(CLOSE_EXPIRED, "session_expired")
    return Close(CLOSE_REVOKED, "session_revoked")


class Connection:
    """Implements the hub's ``LiveConnection``; the WebSocket driver owns the socket."""

    def __init__(
        self,
        *,
        app_id: str,
        user_pk: int,
        session_id: str,
        expires_at: float,
        cursor: int,
        queue_size: int,
        read_page: ReadPage,
        page_size: int = 500,
    ) -> None:
        self.app_id = app_id
        self.user_pk = user_pk
        self.session_id = session_id
        self.expires_at = expires_at
        self._cursor = cursor
        self._wanted = cursor
        self._read_page = read_page
        self._page_size = page_size
        self._queue: asyncio.Queue[bytes | Close] = asyncio.Queue(maxsize=queue_size)
        self._catching_up = False
        self._catch_up_task: asyncio.Task[None] | None = None
        self._close_after: Close | None = None
        self.finished: asyncio.Future[Close] = asyncio.get_running_loop().create_future()

    @property
    def cursor(self) -> int:
        """The position of the last event queued for sending."""
        return self._cursor

    @property
    def ending(self) -> bool:
        return self._close_after is not None or self.finished.done()

    # -- the hub's side (synchronous, never blocks) ------------------------------------

    def offer_event(self, pos: int, frame: bytes) -> None:
        if self.ending:
            return
        self._wanted = max(self._wanted, pos)
        if self._catching_up or pos <= self._cursor:
            return
        if pos == self._cursor + 1:
            if self._push_live(frame):
                self._cursor = pos
        else:
            self._start_catch_up(announce=False)

    def offer_signal(self, frame: bytes) -> None:
        if not self.ending:
            self._push_live(frame)

    def resync(self) -> None:
        if not self.ending and not self._catching_up:
            self._start_catch_up(announce=False)

    def revoke(self, reason: str) -> None:
        """Send every stored event up to now (the ``session.revoked`` one included), then
        close with 4003, or 4004 when the session expired."""
        if self.ending:
            return
        self._close_after = _close_for(reason)
        if not self._catching_up:
            self._start_catch_up(announce=False)

    def going_away(self) -> None:
        self.finish(Close(CLOSE_GOING_AWAY, "going_away"))

    # -- the driver's side ---------------------------------------------------------------

    def start_replay(self) -> None:
        """Replay the store after the cursor, then send ``caught_up``; call once, after the
        connection is registered with the hub (so no live event can fall between)."""
        self._start_catch_up(announce=True)

    async def send(self, frame: bytes) -> None:
        """Queue a response frame, waiting for room (the reader is paced by the writer)."""
        await self._queue.put(frame)

    async def write_forever(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        """The one writer: drain the queue onto the socket until a close is dequeued."""
        while True:
            item = await self._queue.get()
            if isinstance(item, Close):
                self.finish(item)
                return
            await send_text(item.decode())
            # An idle socket must not pin the last frame it sent while it waits: orjson's
            # output keeps a 4 KiB allocation however short the frame (caught_up, hello).
            del item

    def finish(self, close: Close) -> None:
        """End the connection now; the driver closes the socket with ``close.code``."""
        if not self.finished.done():
            self.finished.set_result(close)
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()

    # -- internals -----------------------------------------------------------------------

    def _push_live(self, frame: bytes) -> bool:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.info("connection %s fell behind; closing with resume_later", self.session_id)
            self.finish(Close(CLOSE_RESUME_LATER, "resume_later"))
            return False
        return True

    def _start_catch_up(self, *, announce: bool) -> None:
        self._catching_up = True
        # A fresh context: offers can arrive from a task that holds a database connection,
        # and the catch-up must not inherit that task's "holding a connection" marker.
        self._catch_up_task = asyncio.get_running_loop().create_task(
            self._catch_up(announce=announce), context=contextvars.Context()
        )

    async def _catch_up(self, *, announce: bool) -> None:
        try:
            await self._read_until_current(announce=announce)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catch-up failed for session %s", self.session_id)
            self.finish(Close(CLOSE_RESUME_LATER, "resume_later"))
            return
        if self._close_after is not None:
            await self._queue.put(self._close_after)

    async def _read_until_current(self, *, announce: bool) -> None:
        while True:
            # Shielded: cancelling the connection must not cut a database read in half.
            page = await asyncio.shield(self._read_page(self._cursor, self._page_size))
            progressed = False
            for stored in page:
                if stored.pos != self._cursor + 1:
                    break
                await self._queue.put(event_frame(stored.pos, stored.event_json))
                self._cursor = stored.pos
                progressed = True
            if len(page) == self._page_size and progressed:
                continue
            if self._cursor < self._wanted and self._close_after is None:
                if not progressed:
                    await asyncio.sleep(0.05)  # announced but not visible yet: look again
                continue
            if announce:
                announce = False
                await self._queue.put(caught_up_frame(self._cursor))
                if self._cursor < self._wanted:
                    continue
            self._catching_up = False
            return


def caught_up_frame(cursor: int) -> bytes:
    return orjson.dumps({"type": "caught_up", "cursor": cursor})
