"""One live WebSocket's outgoing side: a bounded queue, one writer, and a gap-free cursor.

Every event frame is queued through one rule: it goes out only if its position is the
cursor plus one. Live offers from the hub that fit are queued at once; older ones are
dropped (already sent); a jump means doorbells were missed or reordered, so the connection
reads the missing positions from the store instead. While such a catch-up (or the initial
replay) runs, live offers only raise the position it must reach, so nothing overtakes it.

The queue is bounded twice, in frames and in bytes (a few large messages fill memory long
before a thousand frames do). The hub's offers never wait: when a live frame finds the queue
full the device has fallen behind, and the connection ends itself with
``CloseCode.RESUME_LATER`` rather than grow memory or slow the hub. Replay and catch-up,
which this connection drives itself, wait for room instead; they are paced by the writer,
never by the database (no connection is held while waiting).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from starlette.types import Send

from chinwag.core.protocol import CloseCode, CloseReason, caught_up_frame, event_frame
from chinwag.server import metrics
from chinwag.server.storage.events import StoredPage
from chinwag.server.storage.failures import log_failure

__all__ = ["CANCELLED", "PEER_CLOSED", "Close", "Connection", "ReadPage"]

log = logging.getLogger("chinwag.ws")

PEER_CLOSED = "peer"
"""Close reason marking a socket the client (or the network) already closed."""
CANCELLED = "cancelled"
"""The 4400 reason of a connection whose task was cancelled before it chose a close."""

ReadPage = Callable[[int, int, bool], Awaitable[StoredPage]]
"""``read_page(after, limit, merge)``: the user's stored events after a position,
ascending, and whether that was all of them; ``merge``: merge what is pending for the user
first (``handlers/events.py``), which a replay and a resync need and a hint does not."""


class ReplayBudget(Protocol):
    """Paces a socket's replay (the pages up to its ``caught_up``) by its user's read
    budget (``rate_limits.ReplayPacer``). Live events after ``caught_up`` are not paced:
    they are what the user is sent, not what the user asks for."""

    async def paced(self, read: Callable[[], Awaitable[StoredPage]]) -> StoredPage:
        """``read()`` once the budget has room for a page (waiting, never refusing),
        counted by what it served."""
        ...


_ANY = sys.maxsize
"""``_recheck`` for a resync: read once more whatever the cursor."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    """A :class:`CloseCode` when the server closes; the peer's own code when it did."""
    reason: str


def _close_for(reason: str, wipe: bool = False) -> Close:
    if wipe:
        return Close(CloseCode.SESSION_ENDED, CloseReason.SESSION_WIPED)
    if reason == "expired":
        return Close(CloseCode.SESSION_EXPIRED, CloseReason.SESSION_EXPIRED)
    return Close(CloseCode.SESSION_ENDED, CloseReason.SESSION_REVOKED)


class Connection:
    """Implements the hub's ``LiveConnection``; the WebSocket driver owns the socket.

    One of these lives as long as its socket, and most sockets are idle, so an idle
    connection holds as little as it can (the server's memory per socket is a target): no
    attribute dict, no task and no queue while nothing is waiting to go out. The writer is
    a task started when a frame is queued and ending when the queue is empty; the queue is a
    plain deque, made when needed; a sender waiting for room shares one future, made only
    while the queue is full.
    """

    __slots__ = (
        "_catch_up_task",
        "_catching_up",
        "_close_after",
        "_closed",
        "_context",
        "_cursor",
        "_going_away",
        "_mark",
        "_merge",
        "_page_size",
        "_queue",
        "_queue_bytes",
        "_queue_size",
        "_queued_bytes",
        "_read_page",
        "_reader",
        "_recheck",
        "_replay_budget",
        "_room",
        "_send",
        "_wanted",
        "_writer",
        "app_id",
        "expires_at",
        "session_id",
        "user_pk",
    )

    def __init__(
        self,
        *,
        app_id: str,
        user_pk: int,
        session_id: str,
        expires_at: float,
        cursor: int,
        queue_size: int,
        queue_bytes: int,
        read_page: ReadPage,
        send: Send,
        page_size: int = 500,
        replay_budget: ReplayBudget | None = None,
    ) -> None:
        self.app_id = app_id
        self.user_pk = user_pk
        self.session_id = session_id
        self.expires_at = expires_at
        self._cursor = cursor
        self._wanted = cursor
        self._read_page = read_page
        self._replay_budget = replay_budget
        self._page_size = page_size
        self._send = send
        # The writer runs in the driver's context, as if the driver had started it.
        self._context = contextvars.copy_context()
        self._queue: deque[bytes | Close] | None = None
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._queued_bytes = 0
        self._room: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._catching_up = False
        self._recheck = 0
        """A position a hint named during a catch-up: read once more unless the cursor
        passed it (``_ANY``: once more in any case). Never waited for, as ``_wanted`` is: a
        hint is untrusted (it may come from a forged doorbell) and costs one read at most."""
        self._merge = False
        """The next read merges what is pending first (``ReadPage``)."""
        self._catch_up_task: asyncio.Task[None] | None = None
        self._close_after: Close | None = None
        self._closed: Close | None = None
        self._going_away = False
        self._mark: tuple[bytes, float] | None = None
        """A live event frame queued and when (for the fan-out latency metric)."""

    @property
    def cursor(self) -> int:
        """The position of the last event queued for sending."""
        return self._cursor

    @property
    def ending(self) -> bool:
        return self._close_after is not None or self._closed is not None

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
                if self._mark is None:
                    self._mark = (frame, time.perf_counter())
        else:
            self._start_catch_up(announce=False)

    def hint(self, pos: int) -> None:
        """Another node says the stream reached ``pos``: the events are in the store (a
        doorbell rings after commit), so one read, with nothing to merge, finds them."""
        if self.ending or pos <= self._cursor:
            return
        if self._catching_up:
            self._recheck = max(self._recheck, pos)
        else:
            self._start_catch_up(announce=False)

    def offer_signal(self, frame: bytes) -> None:
        if not self.ending:
            self._push_live(frame)

    def resync(self) -> None:
        if self.ending:
            return
        self._merge = True
        if self._catching_up:
            self._recheck = _ANY  # the running catch-up may have read already: once more
        else:
            self._start_catch_up(announce=False)

    def revoke(self, reason: str, *, wipe: bool = False) -> None:
        """Send every stored event up to now (the ``session.revoked`` one included), then
        close with ``SESSION_ENDED`` (4003; reason ``session_wiped`` when ``wipe``), or
        ``SESSION_EXPIRED`` (4004)."""
        if self.ending:
            return
        self._close_after = _close_for(reason, wipe)
        self._merge = True
        if not self._catching_up:
            self._start_catch_up(announce=False)

    def going_away(self) -> None:
        """The first call queues the 1001 close behind the frames already waiting (the
        acknowledgements of drained sends among them); a second closes at once."""
        close = Close(CloseCode.GOING_AWAY, CloseReason.GOING_AWAY)
        if self._going_away:
            self.finish(close)
            return
        self._going_away = True
        self._append(close)

    # -- the driver's side ---------------------------------------------------------------

    def start_replay(self) -> None:
        """Replay the store after the cursor, then send ``caught_up``; call once, after the
        connection is registered with the hub (so no live event can fall between). It
        merges what is pending first: a message committed between ``hello`` and
        registering reaches the socket this way."""
        self._merge = True
        self._start_catch_up(announce=True)

    async def send(self, frame: bytes) -> None:
        """Queue a response frame, waiting for room (the reader is paced by the writer)."""
        await self._put(frame)

    async def run(self, reader: Coroutine[Any, Any, None]) -> Close:
        """Run ``reader`` (the driver's loop over incoming frames) in the calling task until
        it returns or the connection finishes, then wait for the writer to stop; the close
        the driver should send.

        The reader runs in the driver's own task rather than in one of its own (a task
        and its frames per socket saved), so a finish from elsewhere interrupts it by
        cancelling that task; the cancellation is taken back here, and only here.
        """
        task = asyncio.current_task()
        assert task is not None
        if self._closed is not None:
            reader.close()
        else:
            self._reader = task
            try:
                await reader
            except asyncio.CancelledError:
                # ``finish`` forgets the reader when it cancels it; anyone else's cancel
                # (and ours, if both came) goes on up.
                if self._reader is not None or task.uncancel() > 0:
                    raise
            finally:
                self._reader = None
        self.finish(Close(CloseCode.PROTOCOL_ERROR, CANCELLED))
        writer = self._writer
        if writer is not None and writer is not task:
            await asyncio.wait((writer,))  # cancelled by ``finish``; never mid-frame
        assert self._closed is not None
        return self._closed

    def finish(self, close: Close) -> None:
        """End the connection now; the driver closes the socket with ``close.code``."""
        if self._closed is not None:
            return
        self._closed = close
        current = asyncio.current_task()
        for task in (self._catch_up_task, self._writer):
            if task is not None and task is not current:
                task.cancel()
                task.add_done_callback(self._forget)
        reader = self._reader
        if reader is not None and reader is not current:
            self._reader = None
            reader.cancel()

    # -- internals -----------------------------------------------------------------------

    def _forget(self, task: asyncio.Task[None]) -> None:
        """Drop a cancelled task. One cancelled before its first step never runs its
        ``finally`` (which drops it), and its CancelledError holds its frame, which holds
        this connection: kept, the pair is a reference cycle only the garbage collector
        frees, and never once frozen (server/heap.py)."""
        if self._writer is task:
            self._writer = None
        if self._catch_up_task is task:
            self._catch_up_task = None

    def _queued(self) -> int:
        return 0 if self._queue is None else len(self._queue)

    def _full_for(self, size: int) -> bool:
        """Whether ``size`` more bytes overflow the queue; an empty queue takes any frame,
        so one frame larger than the byte bound still goes out."""
        queued = self._queued()
        return queued >= self._queue_size or (
            queued > 0 and self._queued_bytes + size > self._queue_bytes
        )

    def _push_live(self, frame: bytes) -> bool:
        if self._full_for(len(frame)):
            log.info("connection %s fell behind; closing with resume_later", self.session_id)
            self.finish(Close(CloseCode.RESUME_LATER, CloseReason.RESUME_LATER))
            return False
        self._append(frame)
        return True

    async def _put(self, item: bytes | Close) -> None:
        while self._full_for(len(item) if isinstance(item, bytes) else 0):
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            # Shielded: a waiter being cancelled must not cancel the others' future.
            await asyncio.shield(self._room)
        self._append(item)

    def _append(self, item: bytes | Close) -> None:
        if self._closed is not None:
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        if isinstance(item, bytes):
            self._queued_bytes += len(item)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), context=self._context
            )

    async def _write(self) -> None:
        """The one writer: drain the queue onto the socket, then end (an idle socket has
        no writer); a dequeued ``Close`` finishes the connection."""
        queue = self._queue
        assert queue is not None
        try:
            while queue:
                item = queue.popleft()
                room, self._room = self._room, None
                if room is not None:
                    room.set_result(None)
                if isinstance(item, Close):
                    self.finish(item)
                    return
                self._queued_bytes -= len(item)
                await self._send({"type": "websocket.send", "text": item.decode()})
                mark = self._mark
                if mark is not None and mark[0] is item:
                    self._mark = None
                    metrics.fanout_written(time.perf_counter() - mark[1])
        except asyncio.CancelledError:
            raise
        except Exception:
            self.finish(Close(CloseCode.ABNORMAL, PEER_CLOSED))
        finally:
            self._writer = None
            if not queue:
                # orjson's output keeps a 4 KiB allocation however short the frame, and an
                # empty deque still holds a block: an idle socket keeps neither.
                self._queue = None

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
            if self._close_after is not None:
                await self._put(self._close_after)
        except asyncio.CancelledError:
            raise
        except Exception:
            log_failure(log, "catch-up failed for session %s", self.session_id)
            self.finish(Close(CloseCode.RESUME_LATER, CloseReason.RESUME_LATER))
        finally:
            if self._catch_up_task is asyncio.current_task():
                self._catch_up_task = None  # an idle socket keeps no finished task

    async def _read_shielded(self, after: int, merge: bool) -> StoredPage:
        """Shielded: cancelling the connection must not cut a database read in half."""
        return await asyncio.shield(self._read_page(after, self._page_size, merge))

    async def _read_until_current(self, *, announce: bool) -> None:
        while True:
            merge, self._merge = self._merge, False
            read = partial(self._read_shielded, self._cursor, merge)
            budget = self._replay_budget if announce else None
            # A replay (a socket reopened at cursor 0 over and over) waits for its budget:
            # it was ~20 ms of CPU a page that nobody else could charge.
            page = await (read() if budget is None else budget.paced(read))
            progressed = False
            whole = page.complete
            for stored in page.events:
                if stored.pos != self._cursor + 1:
                    whole = False
                    break
                await self._put(event_frame(stored.pos, stored.event_json))
                self._cursor = stored.pos
                progressed = True
            if progressed and not whole:
                continue  # cut by count or bytes (storage/events.py): read on
            # A whole page needs no second read to show the stream is current (it cost a
            # delivery from another node two reads); an event announced meanwhile raised
            # _wanted, or _recheck, and is read below.
            if self._cursor < self._wanted and self._close_after is None:
                if not progressed:
                    await asyncio.sleep(0.05)  # announced but not visible yet: look again
                continue
            if announce:
                announce = False
                await self._put(caught_up_frame(self._cursor))
                if self._cursor < self._wanted:
                    continue
            recheck, self._recheck = self._recheck, 0
            if recheck > self._cursor:
                continue
            self._catching_up = False
            return
