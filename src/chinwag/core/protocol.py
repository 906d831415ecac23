"""TEMPORARY shim: replaced by the shared wire-protocol module (core/protocol.py) on merge."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import orjson

__all__ = [
    "CaughtUp",
    "ClientAction",
    "CloseCode",
    "EventFrame",
    "Hello",
    "ServerFrame",
    "client_action",
    "parse_server_frame",
]


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    AUTHENTICATION_REQUIRED = 4001
    SESSION_REVOKED = 4003
    SESSION_EXPIRED = 4004
    RESUME_LATER = 4008
    PROTOCOL_ERROR = 4400


class ClientAction(StrEnum):
    RECONNECT = "reconnect"
    RECONNECT_AFTER_PAUSE = "reconnect_after_pause"
    REAUTHENTICATE = "reauthenticate"
    REVOKED = "revoked"
    WIPE = "wipe"
    FIX_CLIENT = "fix_client"


def client_action(code: int | None, reason: str | None) -> ClientAction:
    if code in (CloseCode.AUTHENTICATION_REQUIRED, CloseCode.SESSION_EXPIRED):
        return ClientAction.REAUTHENTICATE
    if code == CloseCode.SESSION_REVOKED:
        return ClientAction.WIPE if reason == "session_wiped" else ClientAction.REVOKED
    if code == CloseCode.RESUME_LATER:
        return ClientAction.RECONNECT_AFTER_PAUSE
    return ClientAction.RECONNECT


@dataclass(frozen=True, slots=True)
class Hello:
    session_id: str
    head: int


@dataclass(frozen=True, slots=True)
class CaughtUp:
    cursor: int


@dataclass(frozen=True, slots=True)
class EventFrame:
    cursor: int
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Other:
    body: dict[str, Any]


ServerFrame = Hello | CaughtUp | EventFrame | Other


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    body = orjson.loads(raw)
    kind = body.get("type")
    if kind == "hello":
        return Hello(str(body["session_id"]), int(body["head"]))
    if kind == "caught_up":
        return CaughtUp(int(body["cursor"]))
    if kind == "event":
        return EventFrame(int(body["cursor"]), body["event"])
    return Other(body)
