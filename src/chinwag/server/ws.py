"""The WebSocket driver: ``GET /v1/websocket``, requests over the socket, and the sweeps.

The driver only moves bytes. Ordering and back-pressure live in
:class:`~chinwag.server.connection.Connection`; the rules of sending a message or marking a
receipt live in the handlers, shared with the HTTP API. The task uvicorn serves the socket
in is the reader, answering requests in the order they arrive, until the peer leaves or the
connection finishes; then it closes the socket with the connection's close code. Frames go
out through the connection's writer, a task that exists only while frames are waiting, so
an idle socket costs one task (memory per idle socket is a target: ``bench/fanout.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from chinwag.core.errors import (
    AuthenticationRequired,
    ChinwagError,
    ErrorId,
    Forbidden,
    InvalidRequest,
    MalformedFrame,
    ProtocolViolation,
    ServiceUnavailable,
)
from chinwag.core.protocol import (
    CloseCode,
    CloseReason,
    Hello,
    Method,
    Request,
    error_response_frame,
    ok_response_frame,
    parse_client_frame,
)
from chinwag.core.typing import TypingState
from chinwag.server import metrics
from chinwag.server.broker import SessionsRevoked
from chinwag.server.connection import CANCELLED, PEER_CLOSED, Close, Connection
from chinwag.server.doorbells import close_revoked
from chinwag.server.handlers.auth import (
    Authenticated,
    authenticate,
    require_live_session,
    user_json,
)
from chinwag.server.handlers.events import merged_head, merged_read
from chinwag.server.handlers.session_activity import touch_connected
from chinwag.server.handlers.sessions import end_sessions, purge_spent_records
from chinwag.server.rate_limits import Action, ReplayPacer
from chinwag.server.services import Services
from chinwag.server.storage import events as event_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.events import StoredPage
from chinwag.server.storage.failures import (
    is_storage_unavailable,
    log_failure,
    storage_unavailable,
)
from chinwag.server.webhooks.presence import device_connected, device_disconnected

__all__ = ["SWEEP_INTERVAL", "WEBSOCKET_PATH", "expire_session", "serve_socket", "sweep_forever"]

log = logging.getLogger("chinwag.ws")

MethodHandler = Callable[[Services, Authenticated, dict[str, Any]], Awaitable[dict[str, Any]]]


def _session_token(scope: Scope, query: dict[str, str]) -> str | None:
    name: bytes
    raw: bytes
    for name, raw in scope["headers"]:
        if name == b"authorization":
            scheme, _, value = raw.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            break
    return query.get("session_token") or None


def _query(scope: Scope) -> dict[str, str]:
    """The query parameters, the last value of each (as Starlette's ``query_params``)."""
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


def _cursor(raw: str | None, head: int) -> int | None:
    """The resume position: ``after`` when it is a position the stream has reached."""
    if raw is None:
        return head
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    after = int(raw)
    return after if after <= head else None


async def _accept(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})


async def _refuse(receive: Receive, send: Send, code: CloseCode, reason: str) -> None:
    await _accept(receive, send)
    await _close(send, code, reason)


async def _close(send: Send, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": reason})


async def serve_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /v1/websocket``, as a bare ASGI app.

    The task serving a socket keeps every frame between uvicorn and here for the socket's
    life, so this skips what FastAPI's websocket routes add to that chain (dependency
    injection, two exit stacks, an exception-handling wrapper, a ``WebSocket`` object);
    the app's own middleware still wraps it.
    """
    services: Services = scope["app"].state.services
    query = _query(scope)
    found = await _authenticate_or_refuse(services, _session_token(scope, query), receive, send)
    if found is None:
        return
    caller, head = found
    cursor = _cursor(query.get("after"), head)
    del query
    if cursor is None:
        reason = f"after must be an integer from 0 to {head}"
        await _refuse(receive, send, CloseCode.PROTOCOL_ERROR, reason)
        return
    await _accept(receive, send)
    conn = _register(services, caller, cursor, head, send)
    if conn is None:
        await _close(send, CloseCode.TOO_MANY_CONNECTIONS, CloseReason.TOO_MANY_CONNECTIONS)
        return
    metrics.socket_opened()
    try:
        conn.start_replay()
        await _recheck_session(services, conn)
        await device_connected(services, caller.session.id)
        close = await conn.run(_read(services, caller, conn, receive))
    except Exception as failure:
        if not is_storage_unavailable(failure):
            raise
        log.warning("database unavailable on a socket: %s", type(failure).__name__)
        close = Close(CloseCode.RESUME_LATER, CloseReason.RESUME_LATER)
    finally:
        services.hub.unregister(conn)
        metrics.socket_closed()
        conn.finish(Close(CloseCode.PROTOCOL_ERROR, CANCELLED))
        await device_disconnected(services, caller.session.id)
    if close.reason != PEER_CLOSED:
        with contextlib.suppress(Exception):
            await _close(send, close.code, close.reason)


async def _authenticate_or_refuse(
    services: Services, token: str | None, receive: Receive, send: Send
) -> tuple[Authenticated, int] | None:
    """The caller and their stream's head (with what was pending merged, for ``hello``),
    or None once the handshake is refused with the close that says why: the session's
    end, or 4008 ``resume_later`` when the database is unavailable (the device reconnects
    after a pause, as it does for any 4008)."""
    try:
        caller = await authenticate(services, token)
        return caller, await merged_head(services, caller.user.pk, caller.user.stream_head)
    except AuthenticationRequired as refused:
        await _refuse(receive, send, *_refusal(refused.data))
    except Forbidden:  # a session that a user's or app's suspension ended
        await _refuse(receive, send, CloseCode.SESSION_ENDED, CloseReason.SESSION_REVOKED)
    except Exception as failure:
        if not is_storage_unavailable(failure):
            raise
        log.warning("database unavailable for a handshake: %s", type(failure).__name__)
        await _refuse(receive, send, CloseCode.RESUME_LATER, CloseReason.RESUME_LATER)
    return None


def _register(
    services: Services, caller: Authenticated, cursor: int, head: int, send: Send
) -> Connection | None:
    """A new connection, registered with the hub; None when the session or user already
    holds as many sockets as it may. Synchronous, so two sockets connecting at once cannot
    both take the last place."""
    if _over_socket_limit(services, caller):
        return None
    conn = _connect(services, caller, cursor, send)
    # Queued before registering, so it is first; registered before replaying, so no live
    # event can fall between the replay and the live stream.
    conn.offer_signal(_hello(services, caller, head))
    services.hub.register(conn)
    return conn


def _refusal(data: dict[str, Any]) -> tuple[CloseCode, CloseReason]:
    """The close for a refused handshake: a session the caller held says how it ended
    (so a device that slept through a wipe still wipes); anything else is 4001."""
    reason = data.get("reason")
    if data.get("wipe"):
        return CloseCode.SESSION_ENDED, CloseReason.SESSION_WIPED
    if reason == "expired":
        return CloseCode.SESSION_EXPIRED, CloseReason.SESSION_EXPIRED
    if reason is not None:
        return CloseCode.SESSION_ENDED, CloseReason.SESSION_REVOKED
    return CloseCode.AUTHENTICATION_REQUIRED, CloseReason.AUTHENTICATION_REQUIRED


WEBSOCKET_PATH = "/v1/websocket"
"""Served by :func:`serve_socket`, which the app calls ahead of its middleware (``app.py``)."""


def _over_socket_limit(services: Services, caller: Authenticated) -> bool:
    """Whether the session or the user already holds as many sockets as it may, here."""
    hub, settings = services.hub, services.settings
    return (
        hub.sockets_of_session(caller.session.id) >= settings.max_sockets_per_session
        or hub.sockets_of_user(caller.user.pk) >= settings.max_sockets_per_user
    )


async def _recheck_session(services: Services, conn: Connection) -> None:
    """A session revoked between authenticating and registering missed its doorbell."""
    async with services.db.read() as db:
        session = await session_store.get_session(db, conn.session_id)
    if session is not None and session.revoked_at is not None:
        conn.revoke(session.revoked_reason or "revoked", wipe=session.wipe)


def _connect(services: Services, caller: Authenticated, cursor: int, send: Send) -> Connection:
    return Connection(
        app_id=caller.app_id,
        user_pk=caller.user.pk,
        session_id=caller.session.id,
        expires_at=caller.session.expires_at,
        cursor=cursor,
        queue_size=services.settings.connection_queue_size,
        queue_bytes=services.settings.connection_queue_bytes,
        read_page=partial(_read_page, services, caller.user.pk),
        send=send,
        replay_budget=ReplayPacer(services.rate_limits, caller),
    )


async def _read_page(
    services: Services, user_pk: int, after: int, limit: int, merge: bool
) -> StoredPage:
    """A page of the stream, with what is pending merged first when ``merge`` (see
    ``Connection``'s ``ReadPage``). When not, read together with the other sockets'
    reads of the moment, in one statement (``storage/read_batching.py``): this is how a
    message sent through another node reaches the socket."""
    if not merge:
        return await services.page_reads.page(user_pk, after=after, limit=limit)
    async with merged_read(services, user_pk) as db:
        return await event_store.read_stream_page(db, user_pk, after=after, limit=limit)


def _hello(services: Services, caller: Authenticated, head: int) -> bytes:
    user = user_json(caller.user)
    return Hello(caller.session.id, user, head, services.now()).serialize()


async def _read(
    services: Services, caller: Authenticated, conn: Connection, receive: Receive
) -> None:
    """Answer requests in the order they arrive, until the peer closes or breaks the
    protocol (or, from ``Connection.run``, the connection finishes)."""
    while True:
        try:
            message = await receive()
        except asyncio.CancelledError:
            raise
        except Exception:
            conn.finish(Close(CloseCode.ABNORMAL, PEER_CLOSED))
            return
        if message["type"] == "websocket.disconnect":
            conn.finish(Close(int(message.get("code") or 1005), PEER_CLOSED))
            return
        text = message.get("text")
        try:
            if text is None:
                raise MalformedFrame("Expected a text frame, got a binary one.")
            request = parse_client_frame(text)
        except MalformedFrame:
            reason = "frames must be JSON objects in text frames"
            conn.finish(Close(CloseCode.PROTOCOL_ERROR, reason))
            return
        except ProtocolViolation as violation:
            await conn.send(error_response_frame(violation.request_id, _error_json(violation)))
            continue
        # Shielded: a socket closing mid-request must not cut a transaction in half.
        # Tracked: a stopping server waits for the answer, which is queued (with no await
        # in between when the queue has room) before the 1001 close is.
        with services.drain.track():
            response, ended = await asyncio.shield(_answer(services, caller, conn, request))
        await conn.send(response)
        if ended is not None:
            # The write found its session ended in the store (a process that rang no
            # doorbell here ended it): close now, behind this refusal, not at the sweep.
            conn.revoke(ended[0], wipe=ended[1])


async def _answer(
    services: Services, caller: Authenticated, conn: Connection, request: Request
) -> tuple[bytes, tuple[str, bool] | None]:
    """The response frame; and, when the store said the session has ended, how (its
    reason and wipe flag), for the caller to close the socket behind the refusal."""
    try:
        if conn.ending or caller.session.expires_at <= services.now():
            raise AuthenticationRequired("This session has ended.")
        if services.drain.draining:
            raise ServiceUnavailable("This server is shutting down; resend after reconnecting.")
        await services.rate_limits.charge(Action.REQUESTS, caller)
        result = await _METHODS[request.method](services, caller, request.data)
    except ChinwagError as error:
        ended = None
        reason = error.data.get("reason")
        # Ended by time the sweep's own expiry handles (it records the ending).
        if isinstance(error, AuthenticationRequired) and reason not in (None, "expired"):
            ended = (str(reason), error.data.get("wipe") is True)
        return error_response_frame(request.request_id, _error_json(error)), ended
    except Exception as failure:
        if is_storage_unavailable(failure):  # the socket lives; the device retries
            log.warning("database unavailable for %s: %s", request.method, type(failure).__name__)
            frame = error_response_frame(request.request_id, _error_json(storage_unavailable()))
            return frame, None
        log.exception("WebSocket request %s failed", request.request_id)
        internal = {"id": str(ErrorId.INTERNAL_ERROR), "message": "Internal error.", "data": {}}
        return error_response_frame(request.request_id, internal), None
    return ok_response_frame(request.request_id, result), None


def _error_json(error: ChinwagError) -> dict[str, Any]:
    body: dict[str, Any] = error.to_json()["error"]
    return body


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(
            f"Invalid {name}: expected {kind.__name__}, got {type(value).__name__}.",
            status=422,
            data={"property": name},
        )
    return value


async def _message_send(
    services: Services, caller: Authenticated, data: dict[str, Any]
) -> dict[str, Any]:
    from chinwag.server.handlers.messages import send_message

    message, created = await send_message(
        services,
        caller,
        _field(data, "conversation_id", str),
        _field(data, "id", str),
        data.get("parts"),
    )
    return {"message": message, "created": created}


async def _receipt_mark(
    services: Services, caller: Authenticated, data: dict[str, Any]
) -> dict[str, Any]:
    from chinwag.server.handlers.receipts import mark_receipt

    return await mark_receipt(
        services,
        caller,
        _field(data, "conversation_id", str),
        _field(data, "type", str),
        _field(data, "position", int),
    )


async def _typing_update(
    services: Services, caller: Authenticated, data: dict[str, Any]
) -> dict[str, Any]:
    from chinwag.server.handlers.conversations import active_participant_pks

    await services.rate_limits.charge(Action.TYPING, caller)
    conversation_id = _field(data, "conversation_id", str)
    state = data.get("state")
    if state not in {s.value for s in TypingState}:
        raise InvalidRequest(
            f"Invalid state: expected started, paused or finished, got {state!r:.40}.",
            status=422,
            data={"property": "state"},
        )
    async with services.db.read() as db:  # typing writes nothing: its own read
        await require_live_session(db, caller.session.id, services.now())
    audience = await active_participant_pks(services, caller, conversation_id)
    services.typing.update(
        conversation_id=conversation_id,
        user_pk=caller.user.pk,
        user_id=caller.user.user_id,
        audience=audience,
        state=TypingState(state),
        now=services.now(),
    )
    return {}


async def _ping(services: Services, caller: Authenticated, data: dict[str, Any]) -> dict[str, Any]:
    async with services.db.read() as db:
        user = await user_store.get_user_by_pk(db, caller.user.pk)
    head = user.stream_head if user is not None else caller.user.stream_head
    return {"server_time": services.now(), "head": head}


_METHODS: dict[Method, MethodHandler] = {
    Method.MESSAGE_SEND: _message_send,
    Method.RECEIPT_MARK: _receipt_mark,
    Method.TYPING_UPDATE: _typing_update,
    Method.PING: _ping,
}


async def expire_session(services: Services, session_id: str, app_id: str, user_pk: int) -> None:
    """End a session whose time is up: mark it, tell the user's stream once (whichever
    node gets there first), and close its sockets with ``CloseCode.SESSION_EXPIRED``."""
    async with services.db.transaction() as tx:
        ended = await end_sessions(
            services, tx, app_id=app_id, user_pk=user_pk, session_ids=[session_id],
            reason="expired",
        )  # fmt: skip
    if not ended:  # ended elsewhere already: close ours
        services.hub.dispatch(SessionsRevoked(session_ids=(session_id,), reason="expired"))


SWEEP_INTERVAL = 0.5
"""Seconds between sweeps: typing silence and session expiry are this late at most."""


async def sweep_forever(
    services: Services,
    interval: float = SWEEP_INTERVAL,
    revocation_every: int = 4,
    purge_every: int = 120,
) -> None:
    """Typing silence and session expiry, checked against ``services.now()``; and, every
    ``revocation_every`` ticks, sessions revoked in the database by a process that could not
    ring this node's doorbell (the CLI, a node on another broker); every ``purge_every``
    ticks, spent nonce and jti records, and "last seen" for the sessions connected here."""
    expiring: set[str] = set()
    tick = 0
    while True:
        await asyncio.sleep(interval)
        tick += 1
        now = services.now()
        try:
            services.typing.sweep(now)
            due = services.hub.expired_sessions(now)
            expiring &= set(due)
            for session_id, conn in due.items():
                if session_id not in expiring:
                    expiring.add(session_id)
                    await expire_session(services, session_id, conn.app_id, conn.user_pk)
            if tick % revocation_every == 0:
                await close_revoked(services, services.hub.session_ids())
            if tick % purge_every == 0:
                await purge_spent_records(services)
                await touch_connected(services)
        except Exception:
            log_failure(log, "sweep failed; retrying on the next tick")
