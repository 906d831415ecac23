"""Getting the device current: the first (historic) sync, then the live event stream.

First sync, for a fresh device: read the stream head *before* the snapshot, download
conversations and then messages (per the app's :class:`SyncPolicy`), and finally replay the
stream from that head. Whatever changed during the download is replayed over data that
may already include it — harmless, because applying events is idempotent — and nothing can
fall between snapshot and stream. Pages are up to 500 messages, inserted with one
``executemany`` per page, and a few conversations download at once so the server's latency
and the device's inserts overlap; memory holds a few pages, never the whole history.

Then the stream: the WebSocket ``/v1/websocket?after=CURSOR`` replays what was missed and
stays live. When it can't be used (an HTTP error other than 401 at the handshake) the SDK
polls ``GET /v1/events``. Reconnects wait a jittered, capped back-off so a restarted server
is not stormed. The cursor is committed with the events it covers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from chinwag.client.apply import ApplyResult
from chinwag.client.auth import Authenticator, ending_event
from chinwag.client.connection import Api, open_websocket
from chinwag.client.errors import (
    AuthenticationStopped,
    NotAuthenticated,
    OfflineError,
    ServerError,
    SessionRevoked,
    Suspended,
)
from chinwag.client.gate import Gate
from chinwag.client.models import Typing
from chinwag.client.signals import typing_from_frame, typing_request
from chinwag.client.store import Store
from chinwag.client.vault import SavedSession
from chinwag.core.backoff import Backoff
from chinwag.core.client_states import AuthEvent, ConnectionEvent
from chinwag.core.errors import ProtocolViolation
from chinwag.core.protocol import (
    CaughtUp,
    ClientAction,
    CloseCode,
    EventFrame,
    Hello,
    ServerFrame,
    client_action,
    parse_server_frame,
)
from chinwag.core.sync_cursor import SyncPolicy, history_start
from chinwag.core.typing import TypingState

__all__ = ["LiveSync", "SyncProgress", "historic_sync"]

log = logging.getLogger("chinwag.client")

PAGE = 500
"""Messages per history request: the protocol's maximum, so few round trips."""
EVENTS_PAGE = 1000
MAX_REFUSED_PAUSE = 60.0
"""The longest a refused handshake's ``Retry-After`` holds the socket back."""
CONCURRENCY = 4
"""Conversations downloaded at once: enough to hide latency, few enough for memory."""


class Requester(Protocol):
    async def __call__(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class SyncProgress:
    conversations: int
    conversations_total: int
    messages: int
    messages_total: int

    @property
    def fraction(self) -> float:
        if self.messages_total == 0:
            return 1.0 if self.conversations >= self.conversations_total else 0.0
        return min(1.0, self.messages / self.messages_total)


async def historic_sync(
    request: Requester,
    store: Store,
    me: str,
    policy: SyncPolicy,
    progress: Callable[[SyncProgress], None],
) -> int:
    """Download the user's history into ``store``; return the stream head it is valid at."""
    head = int((await request("GET", "/v1/events", params={"after": 0, "limit": 1}))["head"])
    conversations: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"sort": "last_message", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = await request("GET", "/v1/conversations", params=params)
        conversations.extend(page["conversations"])
        await store.upsert_conversations(page["conversations"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    plan = []
    for c in conversations:
        last = int(c.get("last_position") or 0)
        start = history_start(
            policy, last_position=last, read_position=int(c.get("read_position") or 0)
        )
        if last > start:
            plan.append((c["id"], start, last))
    total = sum(last - start for _, start, last in plan)
    done = {"conversations": len(conversations) - len(plan), "messages": 0}

    def report() -> None:
        progress(SyncProgress(done["conversations"], len(conversations), done["messages"], total))

    report()
    queue: asyncio.Queue[tuple[str, int, int]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            cid, after, _last = queue.get_nowait()
            while True:
                page = await request(
                    "GET",
                    f"/v1/conversations/{cid}/messages",
                    params={"after": after, "limit": PAGE},
                )
                messages = page["messages"]
                if messages:
                    await store.insert_messages(messages, me)
                    after = messages[-1]["position"]
                    done["messages"] += len(messages)
                    report()
                if not page.get("has_more") or not messages:
                    break
            done["conversations"] += 1
            report()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return head


ResultHandler = Callable[[ApplyResult], None]
"""Announces what a batch changed (the app's events); synchronous, so nothing can come
between a batch's commit and its announcement but the store call itself."""
MissingHandler = Callable[[set[str]], Awaitable[None]]
ConnectionHandler = Callable[[ConnectionEvent], None]

_SIGNED_OUT = (NotAuthenticated, AuthenticationStopped, SessionRevoked, Suspended)
"""The device is signed out (or held, suspended): the stream has nobody to sync for."""


class LiveSync:
    """Keeps the store current from the stream, across reconnects; one task per client.

    It drives the connection table (``CONNECT``/``RETRY`` before each attempt, ``OPEN`` on
    the server's ``hello`` or a poll that answered, ``LOSE`` when the socket or server goes)
    and hands every session ending it sees — a close code, our own ``session.revoked`` —
    to the authenticator, tagged with the session the socket was opened with, so an ending
    of a session the device has already replaced changes nothing.
    """

    def __init__(
        self,
        api: Api,
        auth: Authenticator,
        store: Store,
        request: Requester,
        *,
        on_result: ResultHandler,
        on_missing: MissingHandler,
        on_connection: ConnectionHandler,
        backoff: Backoff,
        rand: Callable[[], float] = random.random,
        use_websocket: bool = True,
        poll_interval: float = 5.0,
        on_typing: Callable[[Typing], None] = lambda typing: None,
    ) -> None:
        self.api = api
        self.on_typing = on_typing
        self._socket: Any = None
        """The open event socket, for ephemeral requests (typing); None between sockets."""
        self.auth = auth
        self.store = store
        self.request = request
        self.on_result = on_result
        self.on_missing = on_missing
        self.on_connection = on_connection
        self.backoff = backoff
        self.rand = rand
        self.use_websocket = use_websocket
        self.poll_interval = poll_interval
        self.caught_up = Gate()
        """Set once this run has read the stream up to the server's head."""
        self._lock = asyncio.Lock()

    async def apply(
        self, batch: list[tuple[int, dict[str, Any]]], session: SavedSession
    ) -> ApplyResult:
        result = await _finish_even_if_cancelled(self._store_and_announce(batch, session))
        if result.missing_conversations:
            await self.on_missing(result.missing_conversations)
        if result.revoked is not None:
            event = ending_event(result.revoked.get("reason"), result.revoked.get("wipe"))
            await self.auth.ended(session, event)
        return result

    async def _store_and_announce(
        self, batch: list[tuple[int, dict[str, Any]]], session: SavedSession
    ) -> ApplyResult:
        result = await self.store.apply_events(batch, session.user.user_id, session.session_id)
        self.on_result(result)
        return result

    async def catch_up(self) -> None:
        """Read ``/v1/events`` from the cursor to the head (also the polling fallback)."""
        async with self._lock:
            while True:
                session = await self.auth.current()
                cursor = await self.store.cursor()
                page = await self.request(
                    "GET", "/v1/events", params={"after": cursor, "limit": EVENTS_PAGE}
                )
                batch = [(int(e["cursor"]), e["event"]) for e in page["events"]]
                result = await self.apply(batch, session) if batch else None
                if result is None or (not page.get("has_more") and not result.gap):
                    self.caught_up.set()
                    return
                if result.revoked is not None:
                    return

    async def run(self) -> None:
        attempt = 0
        while True:
            pause = 0.0
            try:
                self.on_connection(ConnectionEvent.CONNECT)
                if self.use_websocket:
                    pause = await self._websocket()
                else:
                    await self._poll()
                attempt = 0 if pause == 0.0 else attempt
            except _SIGNED_OUT:
                return
            except OfflineError:
                self.on_connection(ConnectionEvent.LOSE)
            except ServerError as exc:
                if exc.status != 401:  # a 401 has already renewed the session
                    log.warning("live sync: %s", exc)
            except Exception as exc:  # a provider that gave up for now, a bad frame
                log.warning("live sync: %r", exc)
            await asyncio.sleep(pause + self.backoff.delay(attempt, self.rand()))
            attempt += 1

    async def send_typing(self, conversation_id: str, state: TypingState) -> bool:
        """Tell the other participants; False (nothing sent) while no socket is open."""
        socket = self._socket
        if socket is None:
            return False
        try:
            await socket.send(typing_request(conversation_id, state).decode())
        except ConnectionClosed:
            return False
        return True

    async def _poll(self) -> None:
        """The fallback when the socket is refused: read ``/v1/events`` every interval."""
        while True:
            await self.catch_up()
            self.on_connection(ConnectionEvent.OPEN)
            await asyncio.sleep(self.poll_interval)

    async def _websocket(self) -> float:
        """One socket's life; returns the extra pause the close code asks for."""
        session = await self.auth.current()
        cursor = await self.store.cursor()
        try:
            async with open_websocket(self.api, session.token, cursor) as ws:
                queue: asyncio.Queue[ServerFrame | None] = asyncio.Queue(maxsize=4000)
                reader = asyncio.create_task(_read(ws, queue))
                self._socket = ws
                try:
                    await self._consume(queue, session)
                finally:
                    self._socket = None
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                code, reason = ws.close_code, ws.close_reason
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                data = _error_data(bytes(exc.response.body or b""))
                await self.auth.unauthorized(session, data)
                return 0.0
            if status == 429 or status >= 500:  # busy or stopping: the socket, later
                log.warning("WebSocket refused (%s); reconnecting after a pause", status)
                return _retry_after(exc.response.headers.get("Retry-After"))
            log.warning("WebSocket refused (%s); polling /v1/events instead", status)
            self.use_websocket = False
            return 0.0
        self.on_connection(ConnectionEvent.LOSE)
        return await self._closed(code, reason, session)

    async def _consume(
        self, queue: asyncio.Queue[ServerFrame | None], session: SavedSession
    ) -> None:
        while True:
            frame = await queue.get()
            if frame is None:
                return
            if isinstance(frame, EventFrame):
                await self._apply_burst(queue, [(frame.cursor, frame.event)], session)
            else:
                self._on_frame(frame)

    def _on_frame(self, frame: ServerFrame) -> None:
        """Every frame but a stored event's."""
        if isinstance(frame, Hello):
            self.on_connection(ConnectionEvent.OPEN)
        elif isinstance(frame, CaughtUp):
            self.caught_up.set()
        elif (typing := typing_from_frame(frame)) is not None:
            self.on_typing(typing)

    async def _apply_burst(
        self,
        queue: asyncio.Queue[ServerFrame | None],
        batch: list[tuple[int, dict[str, Any]]],
        session: SavedSession,
    ) -> None:
        """Apply the event frames already waiting together, in one store transaction. The
        burst ends at the first other frame, which is handled once the events before it
        are stored: a typing signal among them reaches the app (a burst once swallowed
        it), and ``caught_up`` is not set before the events it follows are applied."""
        after: ServerFrame | None = None
        while len(batch) < EVENTS_PAGE and not queue.empty():
            more = queue.get_nowait()
            if more is None:
                queue.put_nowait(None)
                break
            if not isinstance(more, EventFrame):
                after = more
                break
            batch.append((more.cursor, more.event))
        result = await self.apply(batch, session)
        if result.gap and result.revoked is None:
            await self.catch_up()
        if after is not None:
            self._on_frame(after)

    async def _closed(self, code: int | None, reason: str | None, session: SavedSession) -> float:
        """Act on the close code (``client_action`` decides); the pause before reconnecting."""
        action = client_action(code or CloseCode.ABNORMAL, reason or "")
        if action is ClientAction.RECONNECT_AFTER_PAUSE:
            return 1.0
        if action is ClientAction.FIX_CLIENT:  # reconnecting would repeat it: poll instead
            log.error("the server closed the socket for a protocol error (%s %s)", code, reason)
            self.use_websocket = False
            return 0.0
        event = _ENDINGS.get(action)
        if event is not None:
            await self.auth.ended(session, event)
        return 0.0


_ENDINGS = {
    ClientAction.REAUTHENTICATE: AuthEvent.EXPIRE,
    ClientAction.REVOKED: AuthEvent.REVOKE,
    ClientAction.WIPE: AuthEvent.WIPE,
}


async def _finish_even_if_cancelled(work: Awaitable[ApplyResult]) -> ApplyResult:
    """Run ``work`` (a batch's commit and its announcement) to its end, then let a
    cancellation that came meanwhile through.

    The commit runs in the store's thread, which a cancellation cannot stop: cancelled
    there (``close()`` mid-burst, a cancelled ``sync_now()``), the batch was stored but
    its ``message`` events never raised — and never after, since on the next run those
    messages are no longer new. Waiting out one transaction costs ``close()`` little.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise


async def _read(ws: Any, queue: asyncio.Queue[ServerFrame | None]) -> None:
    try:
        async for raw in ws:
            try:
                frame = parse_server_frame(raw)
            except ProtocolViolation as exc:  # a newer server's frame: skip it
                log.debug("skipping a frame this SDK does not know: %s", exc)
                continue
            await queue.put(frame)
    except ConnectionClosed:
        pass
    finally:
        await queue.put(None)


def _retry_after(header: str | None) -> float:
    """The pause a refused handshake asks for: its ``Retry-After`` seconds (at most
    ``MAX_REFUSED_PAUSE``), else a second. A busy node (its connection cap) or a stopping
    one answers 503, a rate limit 429: both pass, so polling for the rest of the run (and
    silently dropping typing, which only a socket carries) would be the wrong answer."""
    try:
        seconds = float(header) if header is not None else 1.0
    except ValueError:
        seconds = 1.0
    if not math.isfinite(seconds) or seconds <= 0:
        return 1.0
    return min(seconds, MAX_REFUSED_PAUSE)


def _error_data(body: bytes | None) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"")["error"].get("data") or {}
        return dict(data)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {}
