"""How a WebSocket ends: the close codes, the reason words, and what a client does on each.

The server closes only with a :class:`CloseCode` (the 1xxx ones are RFC 6455's, listed
because a client meets them too); the table in ``docs/protocol.md`` is held to this enum by a
test, and :func:`client_action` is the one place a client decides between reconnecting,
re-authenticating, giving up and wiping. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum

__all__ = ["ClientAction", "CloseCode", "CloseReason", "client_action"]


class CloseCode(IntEnum):
    """Every close code a chinwag client can meet (the 1xxx ones from RFC 6455)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    ABNORMAL = 1006
    """Never sent: the connection dropped without a close frame."""
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    AUTHENTICATION_REQUIRED = 4001
    SESSION_ENDED = 4003
    SESSION_EXPIRED = 4004
    RESUME_LATER = 4008
    TOO_MANY_CONNECTIONS = 4029
    PROTOCOL_ERROR = 4400


class CloseReason(StrEnum):
    """The words the server puts in a close frame's reason (4400's reason is free text)."""

    GOING_AWAY = "going_away"
    AUTHENTICATION_REQUIRED = "authentication_required"
    SESSION_REVOKED = "session_revoked"
    SESSION_WIPED = "session_wiped"
    SESSION_EXPIRED = "session_expired"
    RESUME_LATER = "resume_later"
    TOO_MANY_CONNECTIONS = "too_many_connections"


class ClientAction(StrEnum):
    """What a client does when its socket closes."""

    STOP = "stop"
    """The close was asked for; nothing to do."""
    RECONNECT = "reconnect"
    """Reconnect with back-off and resume from the cursor."""
    RECONNECT_AFTER_PAUSE = "reconnect_after_pause"
    """Wait (the server is loaded or the device fell behind), then reconnect and resume."""
    REAUTHENTICATE = "reauthenticate"
    """The session token is no good: get a new session (challenge), then reconnect."""
    REVOKED = "revoked"
    """The session was ended on purpose: ask the app's identity provider again (its backend
    decides whether the user goes on), keeping local data until it answers."""
    WIPE = "wipe"
    """The session was ended and its device must forget: delete local data at once, without
    asking the provider, and sign out."""
    FIX_CLIENT = "fix_client"
    """The client broke the protocol: reconnecting would only repeat it."""


_ACTIONS: Mapping[CloseCode, ClientAction] = {
    CloseCode.NORMAL: ClientAction.STOP,
    CloseCode.GOING_AWAY: ClientAction.RECONNECT,
    CloseCode.ABNORMAL: ClientAction.RECONNECT,
    CloseCode.MESSAGE_TOO_BIG: ClientAction.FIX_CLIENT,
    CloseCode.INTERNAL_ERROR: ClientAction.RECONNECT_AFTER_PAUSE,
    CloseCode.SERVICE_RESTART: ClientAction.RECONNECT,
    CloseCode.AUTHENTICATION_REQUIRED: ClientAction.REAUTHENTICATE,
    CloseCode.SESSION_ENDED: ClientAction.REVOKED,
    CloseCode.SESSION_EXPIRED: ClientAction.REAUTHENTICATE,
    CloseCode.RESUME_LATER: ClientAction.RECONNECT_AFTER_PAUSE,
    CloseCode.TOO_MANY_CONNECTIONS: ClientAction.RECONNECT_AFTER_PAUSE,
    CloseCode.PROTOCOL_ERROR: ClientAction.FIX_CLIENT,
}


def client_action(code: int, reason: str = "") -> ClientAction:
    """What to do on close ``code`` with ``reason``; a code this version does not know
    (a newer server's) is waited out and retried rather than given up on."""
    if code == CloseCode.SESSION_ENDED and reason == CloseReason.SESSION_WIPED:
        return ClientAction.WIPE
    try:
        return _ACTIONS[CloseCode(code)]
    except ValueError:
        return ClientAction.RECONNECT_AFTER_PAUSE
