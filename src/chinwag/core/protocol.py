"""The WebSocket protocol, written once for both ends: frames, request methods, close codes.

Server → client frames are ``hello`` (first), ``event`` (one stored event at a stream
cursor), ``caught_up`` (replay done), ``signal`` (ephemeral: typing) and ``response`` (the
answer to a request); client → server there is one frame, ``request``. Each is a frozen
dataclass with ``serialize() -> bytes``; :func:`parse_server_frame` and
:func:`parse_client_frame` validate what arrives and raise
:class:`~chinwag.core.errors.ProtocolViolation` (or its :class:`MalformedFrame`, when the
frame is not even a JSON object) with a message saying what was expected and what came.

The hot paths do not build dataclasses: a live event is fanned out to every socket of its
user, so :func:`event_frame` splices the stored event's JSON into the frame as bytes (no
decode, no re-encode), and the server builds its other frames with the ``*_frame``
functions, which return the same bytes the dataclasses serialize to.

Close codes (:class:`CloseCode`, :class:`CloseReason`, :func:`client_action`) live in
:mod:`chinwag.core.close_codes` and are re-exported here, so one import serves each end.
Pure: no I/O, no asyncio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from chinwag.core.close_codes import ClientAction, CloseCode, CloseReason, client_action
from chinwag.core.errors import MalformedFrame, ProtocolViolation
from chinwag.core.typing import TypingState

__all__ = [
    "REQUEST_ID_PATTERN",
    "CaughtUp",
    "ClientAction",
    "CloseCode",
    "CloseReason",
    "ErrorBody",
    "ErrorResponse",
    "EventFrame",
    "FrameType",
    "Hello",
    "Method",
    "OkResponse",
    "Request",
    "ServerFrame",
    "SignalKind",
    "TypingSignal",
    "caught_up_frame",
    "client_action",
    "error_response_frame",
    "event_frame",
    "ok_response_frame",
    "parse_client_frame",
    "parse_server_frame",
    "typing_frame",
]


class FrameType(StrEnum):
    HELLO = "hello"
    EVENT = "event"
    CAUGHT_UP = "caught_up"
    SIGNAL = "signal"
    RESPONSE = "response"
    REQUEST = "request"


class SignalKind(StrEnum):
    TYPING = "typing"


class Method(StrEnum):
    """The request methods a client may call over the socket."""

    MESSAGE_SEND = "message.send"
    RECEIPT_MARK = "receipt.mark"
    TYPING_UPDATE = "typing.update"
    PING = "ping"


REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A request id: 1-64 characters of ``[A-Za-z0-9._-]``."""

# -- building frames (the server's paths; each returns what the dataclass serializes to) --

_EVENT_HEAD = b'{"type":"event","cursor":'


def event_frame(cursor: int, event_json: bytes) -> bytes:
    """The frame for one stored event, its JSON spliced in as it is (no re-encoding)."""
    return _EVENT_HEAD + str(cursor).encode() + b',"event":' + event_json + b"}"


def caught_up_frame(cursor: int) -> bytes:
    return orjson.dumps({"type": FrameType.CAUGHT_UP, "cursor": cursor})


def typing_frame(conversation_id: str, user_id: str, state: TypingState) -> bytes:
    data = {"conversation_id": conversation_id, "user_id": user_id, "state": state}
    return orjson.dumps({"type": FrameType.SIGNAL, "signal": SignalKind.TYPING, "data": data})


def ok_response_frame(request_id: str | None, data: Mapping[str, Any]) -> bytes:
    frame = {"type": FrameType.RESPONSE, "request_id": request_id, "ok": True, "data": data}
    return orjson.dumps(frame)


def error_response_frame(request_id: str | None, error: Mapping[str, Any]) -> bytes:
    """``error`` is the ``{"id", "message", "data"}`` object HTTP errors carry."""
    frame = {"type": FrameType.RESPONSE, "request_id": request_id, "ok": False, "error": error}
    return orjson.dumps(frame)


# -- the frames as values (parsed; also for building off the hot paths) ----------------


@dataclass(frozen=True, slots=True)
class Hello:
    session_id: str
    user: dict[str, Any]
    head: int
    server_time: float

    def serialize(self) -> bytes:
        return orjson.dumps(
            {
                "type": FrameType.HELLO,
                "session_id": self.session_id,
                "user": self.user,
                "head": self.head,
                "server_time": self.server_time,
            }
        )


@dataclass(frozen=True, slots=True)
class EventFrame:
    cursor: int
    event: dict[str, Any]

    def serialize(self) -> bytes:
        return event_frame(self.cursor, orjson.dumps(self.event))


@dataclass(frozen=True, slots=True)
class CaughtUp:
    cursor: int

    def serialize(self) -> bytes:
        return caught_up_frame(self.cursor)


@dataclass(frozen=True, slots=True)
class TypingSignal:
    conversation_id: str
    user_id: str
    state: TypingState

    def serialize(self) -> bytes:
        return typing_frame(self.conversation_id, self.user_id, self.state)


@dataclass(frozen=True, slots=True)
class OkResponse:
    request_id: str | None
    data: dict[str, Any]

    def serialize(self) -> bytes:
        return ok_response_frame(self.request_id, self.data)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    id: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    request_id: str | None
    error: ErrorBody

    def serialize(self) -> bytes:
        body = {"id": self.error.id, "message": self.error.message, "data": self.error.data}
        return error_response_frame(self.request_id, body)


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    method: Method
    data: dict[str, Any] = field(default_factory=dict)

    def serialize(self) -> bytes:
        return orjson.dumps(
            {
                "type": FrameType.REQUEST,
                "request_id": self.request_id,
                "method": self.method,
                "data": self.data,
            }
        )


ServerFrame = Hello | EventFrame | CaughtUp | TypingSignal | OkResponse | ErrorResponse

# -- parsing -------------------------------------------------------------------------


def parse_server_frame(raw: bytes | str) -> ServerFrame:
    """A frame the server sent, validated; :class:`ProtocolViolation` if it is not one."""
    frame = _load(raw)
    kind = frame.get("type")
    parser = _SERVER_PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolViolation(
            f"Expected type to be one of {', '.join(_SERVER_PARSERS)}; got {_shown(kind)}."
        )
    return parser(frame)


def parse_client_frame(raw: bytes | str) -> Request:
    """A request a client sent, validated in the order the server answers errors: a bad
    ``request_id`` first (the answer then carries ``null``), then type, method and data."""
    frame = _load(raw)
    request_id = frame.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise ProtocolViolation("Expected request_id: 1-64 characters of [A-Za-z0-9._-].")
    if frame.get("type") != FrameType.REQUEST:
        raise ProtocolViolation(
            f"Expected type 'request', got {_shown(frame.get('type'))}.", request_id=request_id
        )
    method = frame.get("method")
    if method not in _METHODS:
        raise ProtocolViolation(
            f"Unknown method {_shown(method)}; expected one of {', '.join(sorted(_METHODS))}.",
            request_id=request_id,
        )
    data = frame.get("data", {})
    if not isinstance(data, dict):
        raise ProtocolViolation("Expected data to be an object.", request_id=request_id)
    return Request(request_id, Method(method), data)


_METHODS = frozenset(Method)


def _load(raw: bytes | str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedFrame("Expected a JSON object, got text that is not JSON.") from None
    if not isinstance(value, dict):
        raise MalformedFrame(f"Expected a JSON object, got {_kind(value)}.")
    return value


_NAMES: Mapping[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def _kind(value: object) -> str:
    return "null" if value is None else _NAMES.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    """A value quoted for a message, cut short: messages never echo large inputs."""
    return f"{value!r:.40}" if isinstance(value, str) else _kind(value)


def _get(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[name]`` if it is of ``kind`` (a bool is no integer); else a violation naming
    ``where`` it was expected, what was expected and what came."""
    value = obj.get(name)
    wanted = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        expected = " or ".join(_NAMES[t] for t in wanted)
        got = "nothing" if name not in obj else _kind(value)
        raise ProtocolViolation(f"Expected {where} {name} to be {expected}, got {got}.")
    return value


def _position(frame: dict[str, Any], name: str, minimum: int, where: str) -> int:
    value: int = _get(frame, name, int, where)
    if value < minimum:
        raise ProtocolViolation(f"Expected {where} {name} to be at least {minimum}, got {value}.")
    return value


def _hello(frame: dict[str, Any]) -> Hello:
    return Hello(
        session_id=_get(frame, "session_id", str, "hello"),
        user=_get(frame, "user", dict, "hello"),
        head=_position(frame, "head", 0, "hello"),
        server_time=float(_get(frame, "server_time", (int, float), "hello")),
    )


def _event(frame: dict[str, Any]) -> EventFrame:
    return EventFrame(
        cursor=_position(frame, "cursor", 1, "event"), event=_get(frame, "event", dict, "event")
    )


def _caught_up(frame: dict[str, Any]) -> CaughtUp:
    return CaughtUp(cursor=_position(frame, "cursor", 0, "caught_up"))


def _signal(frame: dict[str, Any]) -> TypingSignal:
    signal = frame.get("signal")
    if signal != SignalKind.TYPING:
        raise ProtocolViolation(f"Expected signal 'typing', got {_shown(signal)}.")
    data: dict[str, Any] = _get(frame, "data", dict, "signal")
    state = data.get("state")
    if state not in _TYPING_STATES:
        raise ProtocolViolation(
            f"Expected typing state started, paused or finished, got {_shown(state)}."
        )
    return TypingSignal(
        conversation_id=_get(data, "conversation_id", str, "typing"),
        user_id=_get(data, "user_id", str, "typing"),
        state=TypingState(state),
    )


_TYPING_STATES = frozenset(TypingState)


def _response(frame: dict[str, Any]) -> OkResponse | ErrorResponse:
    request_id = frame.get("request_id")
    if request_id is not None:
        request_id = _get(frame, "request_id", str, "response")
    if _get(frame, "ok", bool, "response"):
        return OkResponse(request_id, _get(frame, "data", dict, "response"))
    error: dict[str, Any] = _get(frame, "error", dict, "response")
    body = ErrorBody(
        _get(error, "id", str, "error"),
        _get(error, "message", str, "error"),
        _get(error, "data", dict, "error") if "data" in error else {},
    )
    return ErrorResponse(request_id, body)


_SERVER_PARSERS: Mapping[str, Callable[[dict[str, Any]], ServerFrame]] = {
    FrameType.HELLO: _hello,
    FrameType.EVENT: _event,
    FrameType.CAUGHT_UP: _caught_up,
    FrameType.SIGNAL: _signal,
    FrameType.RESPONSE: _response,
}
