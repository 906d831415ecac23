"""The SDK's authentication and connection lifecycles, as tables (state, event → state, effects).

Why tables: the SDK bugs chat clients keep shipping — data wiped on a routine expiry, a fresh
session orphaned by the old socket's close, a "stopped" device that still queues messages —
are moves nobody meant to allow, or moves whose consequences were decided in three places.
Here every allowed move is written down once, with what it does to the user's local data,
the outbox and the app's token provider; an illegal move raises :class:`IllegalTransition`
naming the state and the event (h11's ``_state.py`` does the same for HTTP/1.1). The SDK
changes state only through :func:`auth_transition` and carries out the effects it returns.

How a signed-in session can end, and what the device does (docs/sdk.md has the same table)::

    expired (401, close 4004)        -> REAUTHENTICATING  provider asked (needs_refresh), data kept
    revoked by the server (4003)     -> REAUTHENTICATING  provider asked (needs_refresh), data kept
    revoked with wipe                -> UNAUTHENTICATED   data wiped at once, provider not asked
    user or app suspended (403)      -> SUSPENDED         data and queue kept; nothing is sent or
                                                          signed in until the app authenticates
    provider says STOP               -> UNAUTHENTICATED   data and session file wiped
    deauthenticate() / log_out()     -> DEAUTHENTICATING -> UNAUTHENTICATED (outbox, then wipe)
    answered as another user         -> AUTHENTICATED     the previous user's data wiped first

Connection::

    DISCONNECTED --CONNECT--> CONNECTING --OPEN--> CONNECTED --LOSE--> WAITING --RETRY--> CONNECTING
    CONNECTING --LOSE--> WAITING;  any --CLOSE--> DISCONNECTED
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AUTH_TRANSITIONS",
    "CONNECTION_TRANSITIONS",
    "AuthEvent",
    "AuthState",
    "ConnectionEvent",
    "ConnectionState",
    "Effects",
    "IllegalTransition",
    "LocalData",
    "OutboxRule",
    "auth_transition",
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
    """Signing in: a nonce waits for an identity token (no session yet on this device)."""
    AUTHENTICATING = "authenticating"
    """Signing in: a credential is being exchanged for a session."""
    AUTHENTICATED = "authenticated"
    REFRESHING = "refreshing"
    """Signed in; a new session is being fetched before this one expires (still usable)."""
    REAUTHENTICATING = "reauthenticating"
    """The server ended the session (expiry, revocation); the user and their data stay on the
    device while the provider is asked for a new token. Requests wait for the answer."""
    UPGRADING = "upgrading"
    DEAUTHENTICATING = "deauthenticating"
    SUSPENDED = "suspended"
    """The server refused the user (or app) with 403 ``user_suspended``/``app_suspended``.
    Their data and queue stay; the SDK neither signs in nor sends until the app calls
    ``authenticate()`` again (retrying would only repeat the refusal)."""


class AuthEvent(StrEnum):
    RESTORE = "restore"
    """A session kept on the device was loaded at start-up."""
    CHALLENGE = "challenge"
    """The app asked to sign in: a nonce is wanted for an identity token."""
    ANSWER = "answer"
    """A credential (identity token, log-in JWT, anonymous request) is being exchanged."""
    SUCCEED = "succeed"
    """A session was opened for the user this device already had (or its first user)."""
    SWITCH = "switch"
    """A session was opened for a different user than the one whose data is on the device."""
    FAIL = "fail"
    """One attempt failed; the flight backs off and tries again."""
    GIVE_UP = "give_up"
    """The flight ran out of attempts (provider errors, offline)."""
    STOP = "stop"
    """The provider said STOP: the user is no longer signed in to the app."""
    EXPIRE = "expire"
    REVOKE = "revoke"
    WIPE = "wipe"
    """Revoked with ``wipe`` (a stolen device): delete everything without asking."""
    REFRESH = "refresh"
    """The session is near its end: fetch the next one while this one still works."""
    UPGRADE = "upgrade"
    DEAUTHENTICATE = "deauthenticate"
    FINISH = "finish"
    SUSPEND = "suspend"
    """A 403 ``user_suspended``/``app_suspended`` (at sign-in, or for a request)."""


class LocalData(StrEnum):
    KEEP = "kept"
    WIPE = "wiped"
    WIPE_PREVIOUS = "previous user's wiped"


class OutboxRule(StrEnum):
    RUNS = "sends"
    WAITS = "waits"
    DISCARDED = "discarded"
    HELD = "held"
    """Kept, and not tried again until the app signs in again (the SDK's tasks stop)."""


@dataclass(frozen=True, slots=True)
class Effects:
    """What the SDK must do on a move, besides changing state."""

    ask_provider: bool = False
    """Start (or join) the one credential flight."""
    needs_refresh: bool = False
    """Passed to the token provider: the previous token or session ran out."""
    local_data: LocalData = LocalData.KEEP
    outbox: OutboxRule = OutboxRule.RUNS
    deauthenticated: str | None = None
    """Emit ``deauthenticated(reason)`` once the effects are done."""


_NONE = Effects()
_ASK = Effects(ask_provider=True, outbox=OutboxRule.WAITS)
_REAUTH = Effects(ask_provider=True, needs_refresh=True, outbox=OutboxRule.WAITS)
_KEEP_WAITING = Effects(outbox=OutboxRule.WAITS)
_STOPPED = Effects(
    local_data=LocalData.WIPE, outbox=OutboxRule.DISCARDED, deauthenticated="stopped"
)
_WIPED = Effects(local_data=LocalData.WIPE, outbox=OutboxRule.DISCARDED, deauthenticated="wiped")
_SIGNED_OUT = Effects(
    local_data=LocalData.WIPE, outbox=OutboxRule.DISCARDED, deauthenticated="deauthenticated"
)
_SWITCHED = Effects(local_data=LocalData.WIPE_PREVIOUS)
_HELD = Effects(outbox=OutboxRule.HELD, deauthenticated="suspended")

_U, _C, _A, _OK, _F, _R, _UP, _D, _S = (
    AuthState.UNAUTHENTICATED,
    AuthState.CHALLENGED,
    AuthState.AUTHENTICATING,
    AuthState.AUTHENTICATED,
    AuthState.REFRESHING,
    AuthState.REAUTHENTICATING,
    AuthState.UPGRADING,
    AuthState.DEAUTHENTICATING,
    AuthState.SUSPENDED,
)
_E = AuthEvent

AUTH_TRANSITIONS: Mapping[tuple[AuthState, AuthEvent], tuple[AuthState, Effects]] = {
    # Signing in for the first time (nothing of this user on the device yet).
    (_U, _E.RESTORE): (_OK, _NONE),
    (_U, _E.CHALLENGE): (_C, _ASK),
    (_U, _E.ANSWER): (_A, _NONE),
    (_U, _E.EXPIRE): (_U, _NONE),  # a close or 401 of a session no longer held: ignored
    (_U, _E.REVOKE): (_U, _NONE),
    (_U, _E.WIPE): (_U, _NONE),
    (_U, _E.SUSPEND): (_U, _NONE),
    (_C, _E.CHALLENGE): (_C, _ASK),
    (_C, _E.ANSWER): (_A, _NONE),
    (_C, _E.FAIL): (_C, _NONE),
    (_C, _E.GIVE_UP): (_U, _NONE),
    (_C, _E.STOP): (_U, _STOPPED),
    (_C, _E.DEAUTHENTICATE): (_D, _NONE),
    (_C, _E.SUSPEND): (_U, _NONE),  # a first sign-in refused: authenticate() raises it
    (_A, _E.SUCCEED): (_OK, _NONE),
    (_A, _E.SWITCH): (_OK, _SWITCHED),
    (_A, _E.FAIL): (_C, _NONE),
    (_A, _E.GIVE_UP): (_U, _NONE),
    (_A, _E.STOP): (_U, _STOPPED),
    (_A, _E.SUSPEND): (_U, _NONE),
    # Signed in.
    (_OK, _E.EXPIRE): (_R, _REAUTH),
    (_OK, _E.REVOKE): (_R, _REAUTH),
    (_OK, _E.WIPE): (_U, _WIPED),
    (_OK, _E.REFRESH): (_F, Effects(ask_provider=True, needs_refresh=True)),
    (_OK, _E.UPGRADE): (_UP, _NONE),
    (_OK, _E.DEAUTHENTICATE): (_D, _NONE),
    (_OK, _E.SUSPEND): (_S, _HELD),
    # Refreshing before expiry: the old session serves until the new one replaces it.
    (_F, _E.ANSWER): (_F, _NONE),
    (_F, _E.SUCCEED): (_OK, _NONE),
    (_F, _E.SWITCH): (_OK, _SWITCHED),  # the app answered for another user
    (_F, _E.FAIL): (_F, _NONE),
    (_F, _E.GIVE_UP): (_OK, _NONE),  # the old session still works; try again later
    (_F, _E.STOP): (_U, _STOPPED),
    (_F, _E.EXPIRE): (_R, _REAUTH),
    (_F, _E.REVOKE): (_R, _REAUTH),
    (_F, _E.WIPE): (_U, _WIPED),
    (_F, _E.DEAUTHENTICATE): (_D, _NONE),
    (_F, _E.SUSPEND): (_S, _HELD),
    # The server ended the session; the user's data waits for the app's answer.
    (_R, _E.CHALLENGE): (_R, _REAUTH),
    (_R, _E.ANSWER): (_R, _KEEP_WAITING),
    (_R, _E.SUCCEED): (_OK, _NONE),
    (_R, _E.SWITCH): (_OK, _SWITCHED),
    (_R, _E.FAIL): (_R, _KEEP_WAITING),
    (_R, _E.GIVE_UP): (_R, _KEEP_WAITING),  # data kept; asked again at the next need
    (_R, _E.STOP): (_U, _STOPPED),
    (_R, _E.EXPIRE): (_R, _KEEP_WAITING),
    (_R, _E.REVOKE): (_R, _KEEP_WAITING),
    (_R, _E.WIPE): (_U, _WIPED),
    (_R, _E.DEAUTHENTICATE): (_D, _NONE),
    (_R, _E.SUSPEND): (_S, _HELD),
    # Anonymous → identified.
    (_UP, _E.SUCCEED): (_OK, _NONE),
    (_UP, _E.SWITCH): (_OK, _NONE),  # the anonymous user's data moves to the new user
    (_UP, _E.FAIL): (_UP, _NONE),
    (_UP, _E.GIVE_UP): (_OK, _NONE),  # the anonymous session is still good
    (_UP, _E.STOP): (_OK, _NONE),
    (_UP, _E.EXPIRE): (_R, _REAUTH),
    (_UP, _E.REVOKE): (_R, _REAUTH),
    (_UP, _E.WIPE): (_U, _WIPED),
    (_UP, _E.SUSPEND): (_OK, _NONE),  # the identified user is refused; the anonymous one stays
    # Suspended: held until the app asks to sign in again (then as after a revocation).
    (_S, _E.CHALLENGE): (_R, _REAUTH),
    (_S, _E.ANSWER): (_R, _KEEP_WAITING),
    (_S, _E.SUSPEND): (_S, _NONE),
    (_S, _E.EXPIRE): (_S, _NONE),
    (_S, _E.REVOKE): (_S, _NONE),
    (_S, _E.WIPE): (_U, _WIPED),
    (_S, _E.DEAUTHENTICATE): (_D, _NONE),
    # Leaving: the server's own log-out echo (close 4003, session.revoked) is ours.
    (_D, _E.FINISH): (_U, _SIGNED_OUT),
    (_D, _E.FAIL): (_OK, _NONE),
    (_D, _E.EXPIRE): (_D, _NONE),
    (_D, _E.REVOKE): (_D, _NONE),
    (_D, _E.WIPE): (_D, _NONE),
    (_D, _E.SUSPEND): (_D, _NONE),
}


def auth_transition(state: AuthState, event: AuthEvent) -> tuple[AuthState, Effects]:
    """The move for ``event`` in ``state``: the next state and what the SDK must do."""
    try:
        return AUTH_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("authentication", state, event) from None


def next_auth_state(state: AuthState, event: AuthEvent) -> AuthState:
    return auth_transition(state, event)[0]


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
    (_ING, ConnectionEvent.CONNECT): _ING,
    (_ING, ConnectionEvent.OPEN): _ED,
    (_ING, ConnectionEvent.LOSE): _W,
    (_ING, ConnectionEvent.CLOSE): _DIS,
    (_ED, ConnectionEvent.OPEN): _ED,
    (_ED, ConnectionEvent.LOSE): _W,
    (_ED, ConnectionEvent.CLOSE): _DIS,
    (_W, ConnectionEvent.RETRY): _ING,
    (_W, ConnectionEvent.LOSE): _W,
    (_W, ConnectionEvent.CLOSE): _DIS,
}


def next_connection_state(state: ConnectionState, event: ConnectionEvent) -> ConnectionState:
    try:
        return CONNECTION_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("connection", state, event) from None
