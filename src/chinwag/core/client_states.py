"""The SDK's connection and authentication lifecycles, as tables (state, event → state).

Why tables: the SDK bugs other chat clients keep shipping — "already connecting" on a user
switch, two refresh chains after a reconnect, a log-in racing a log-out — are transitions
nobody meant to allow. Writing every allowed move down makes the rest impossible: an
illegal one raises :class:`IllegalTransition` naming the state and the event (h11's
``_state.py`` does the same for HTTP/1.1).

Authentication::

    UNAUTHENTICATED --CHALLENGE--> CHALLENGED --ANSWER--> AUTHENTICATING --SUCCEED--> AUTHENTICATED
    AUTHENTICATED --CHALLENGE--> CHALLENGED         (the server said 401: expired or revoked)
    AUTHENTICATED --UPGRADE--> UPGRADING --SUCCEED|FAIL--> AUTHENTICATED   (anonymous → identified)
    AUTHENTICATED --DEAUTHENTICATE--> DEAUTHENTICATING --FINISH--> UNAUTHENTICATED
    any signed-in state --REVOKE--> UNAUTHENTICATED (the local store is wiped)
    CHALLENGED|AUTHENTICATING --STOP|FAIL--> UNAUTHENTICATED (provider said stop / gave up)

Connection::

    DISCONNECTED --CONNECT--> CONNECTING --OPEN--> CONNECTED --LOSE--> WAITING --RETRY--> CONNECTING
    CONNECTING --LOSE--> WAITING;  any --CLOSE--> DISCONNECTED
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

__all__ = [
    "AUTH_TRANSITIONS",
    "CONNECTION_TRANSITIONS",
    "AuthEvent",
    "AuthState",
    "ConnectionEvent",
    "ConnectionState",
    "IllegalTransition",
    "next_auth_state",
    "next_connection_state",
]


class IllegalTransition(Exception):
    """An event arrived in a state where the table has no move for it (a bug or misuse)."""

    def __init__(self, machine: str, state: StrEnum, event: StrEnum) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        super().__init__(
            f"{machine}: event {event.value!r} is not allowed in state {state.value!r}"
        )


class AuthState(StrEnum):
    UNAUTHENTICATED = "unauthenticated"
    CHALLENGED = "challenged"
    AUTHENTICATING = "authenticating"
    AUTHENTICATED = "authenticated"
    UPGRADING = "upgrading"
    DEAUTHENTICATING = "deauthenticating"


class AuthEvent(StrEnum):
    RESTORE = "restore"
    """A session kept on the device was loaded at start-up."""
    CHALLENGE = "challenge"
    """A nonce is waiting for an identity token (asked for, or carried by a 401)."""
    ANSWER = "answer"
    """A credential (identity token, log-in JWT, anonymous request) is being exchanged."""
    SUCCEED = "succeed"
    FAIL = "fail"
    UPGRADE = "upgrade"
    STOP = "stop"
    DEAUTHENTICATE = "deauthenticate"
    FINISH = "finish"
    REVOKE = "revoke"


_U, _C, _A, _OK, _UP, _D = (
    AuthState.UNAUTHENTICATED,
    AuthState.CHALLENGED,
    AuthState.AUTHENTICATING,
    AuthState.AUTHENTICATED,
    AuthState.UPGRADING,
    AuthState.DEAUTHENTICATING,
)

AUTH_TRANSITIONS: Mapping[tuple[AuthState, AuthEvent], AuthState] = {
    (_U, AuthEvent.RESTORE): _OK,
    (_U, AuthEvent.CHALLENGE): _C,
    (_U, AuthEvent.ANSWER): _A,
    (_U, AuthEvent.REVOKE): _U,
    (_C, AuthEvent.CHALLENGE): _C,
    (_C, AuthEvent.ANSWER): _A,
    (_C, AuthEvent.STOP): _U,
    (_C, AuthEvent.REVOKE): _U,
    (_C, AuthEvent.DEAUTHENTICATE): _D,
    (_C, AuthEvent.FAIL): _U,
    (_A, AuthEvent.SUCCEED): _OK,
    (_A, AuthEvent.FAIL): _U,
    (_A, AuthEvent.CHALLENGE): _C,
    (_A, AuthEvent.STOP): _U,
    (_A, AuthEvent.REVOKE): _U,
    (_OK, AuthEvent.CHALLENGE): _C,
    (_OK, AuthEvent.UPGRADE): _UP,
    (_OK, AuthEvent.DEAUTHENTICATE): _D,
    (_OK, AuthEvent.REVOKE): _U,
    (_UP, AuthEvent.SUCCEED): _OK,
    (_UP, AuthEvent.FAIL): _OK,
    (_UP, AuthEvent.CHALLENGE): _C,
    (_D, AuthEvent.FINISH): _U,
    (_D, AuthEvent.FAIL): _OK,
    (_D, AuthEvent.REVOKE): _U,
}


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"
    """Lost the server; a retry is scheduled after a jittered back-off."""


class ConnectionEvent(StrEnum):
    CONNECT = "connect"
    OPEN = "open"
    LOSE = "lose"
    RETRY = "retry"
    CLOSE = "close"


_DIS, _ING, _ED, _W = (
    ConnectionState.DISCONNECTED,
    ConnectionState.CONNECTING,
    ConnectionState.CONNECTED,
    ConnectionState.WAITING,
)

CONNECTION_TRANSITIONS: Mapping[tuple[ConnectionState, ConnectionEvent], ConnectionState] = {
    (_DIS, ConnectionEvent.CONNECT): _ING,
    (_DIS, ConnectionEvent.CLOSE): _DIS,
    (_ING, ConnectionEvent.OPEN): _ED,
    (_ING, ConnectionEvent.LOSE): _W,
    (_ING, ConnectionEvent.CLOSE): _DIS,
    (_ED, ConnectionEvent.OPEN): _ED,
    (_ED, ConnectionEvent.LOSE): _W,
    (_ED, ConnectionEvent.CLOSE): _DIS,
    (_W, ConnectionEvent.RETRY): _ING,
    (_W, ConnectionEvent.OPEN): _ED,
    (_W, ConnectionEvent.LOSE): _W,
    (_W, ConnectionEvent.CLOSE): _DIS,
}

_S = TypeVar("_S", bound=StrEnum)
_E = TypeVar("_E", bound=StrEnum)


def _step(machine: str, table: Mapping[tuple[_S, _E], _S], state: _S, event: _E) -> _S:
    try:
        return table[(state, event)]
    except KeyError:
        raise IllegalTransition(machine, state, event) from None


def next_auth_state(state: AuthState, event: AuthEvent) -> AuthState:
    return _step("authentication", AUTH_TRANSITIONS, state, event)


def next_connection_state(state: ConnectionState, event: ConnectionEvent) -> ConnectionState:
    return _step("connection", CONNECTION_TRANSITIONS, state, event)
