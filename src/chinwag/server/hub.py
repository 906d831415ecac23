"""Live connections on this node, and how doorbells reach them.

The hub never blocks and never queues without bound: it hands each connection a frame
(``offer_*``) and the connection decides, against its own bounded queue, whether to take
it, catch up from the store, or disconnect itself with "resume later".
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Protocol, TypeAlias, TypeVar

from chinwag.core.protocol import event_frame
from chinwag.server.broker import (
    Doorbell,
    EventsAppended,
    Resync,
    SessionsRevoked,
    Signal,
    StreamsAdvanced,
)

__all__ = ["Hub", "LiveConnection"]

K = TypeVar("K", bound=Hashable)


class LiveConnection(Protocol):
    app_id: str
    user_pk: int
    session_id: str
    expires_at: float

    def offer_event(self, pos: int, frame: bytes) -> None:
        """A new event at stream position ``pos`` for this connection's user."""
        ...

    def hint(self, pos: int) -> None:
        """Another node says the stream reached ``pos``: read the store past the cursor
        (once; an untrusted position is never waited for)."""
        ...

    def offer_signal(self, frame: bytes) -> None: ...

    def resync(self) -> None:
        """Doorbells may have been lost: check the store for anything past the cursor."""
        ...

    def revoke(self, reason: str, *, wipe: bool = False) -> None:
        """The session ended: send ``session.revoked`` and close."""
        ...

    def going_away(self) -> None:
        """The server is shutting down: close with ``CloseCode.GOING_AWAY``."""
        ...


Group: TypeAlias = tuple[LiveConnection, ...] | dict[LiveConnection, None]
"""A user's or a session's connections: a tuple while small, a dict (O(1) add and remove)
once it grows past :data:`SMALL_GROUP`."""

SMALL_GROUP = 8


class Hub:
    """Connections by user and by session.

    Groups are tiny (a user's devices; usually one socket per session) and read far more
    often than changed: a tuple costs a fifth of a one-element set per socket. A group that
    grows past :data:`SMALL_GROUP` becomes a dict, so registering many sockets of one
    session stays linear rather than copying a growing tuple each time. Dispatch iterates
    groups without copying: connections register and unregister only from their own
    driver task, never synchronously inside an offer.
    """

    def __init__(self) -> None:
        self._by_user: dict[int, Group] = {}
        self._by_session: dict[str, Group] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def register(self, conn: LiveConnection) -> None:
        _add(self._by_user, conn.user_pk, conn)
        _add(self._by_session, conn.session_id, conn)
        self._empty.clear()

    def unregister(self, conn: LiveConnection) -> None:
        _discard(self._by_user, conn.user_pk, conn)
        _discard(self._by_session, conn.session_id, conn)
        if not self._by_user:
            self._empty.set()

    async def wait_empty(self) -> None:
        """Until no connection is registered (graceful shutdown waits for its sockets)."""
        await self._empty.wait()

    def expired_sessions(self, now: float) -> dict[str, LiveConnection]:
        """One live connection per session whose expiry has passed (for the expiry sweep)."""
        found: dict[str, LiveConnection] = {}
        for session_id, group in self._by_session.items():
            for conn in group:
                if conn.expires_at <= now:
                    found[session_id] = conn
                    break
        return found

    def session_ids(self) -> list[str]:
        """Sessions with a live connection on this node (for the revocation check)."""
        return list(self._by_session)

    def connection_count(self) -> int:
        return sum(len(group) for group in self._by_user.values())

    def connected(self, user_pks: list[int]) -> list[int]:
        """Those of ``user_pks`` with a live connection here."""
        by_user = self._by_user
        return [pk for pk in user_pks if pk in by_user]

    def sockets_of_user(self, user_pk: int) -> int:
        return len(self._by_user.get(user_pk, ()))

    def sockets_of_session(self, session_id: str) -> int:
        return len(self._by_session.get(session_id, ()))

    def dispatch(self, message: Doorbell) -> None:
        """Hand a doorbell to the connections it concerns. ``RevocationHint`` is not for
        the hub: the store decides first (``server.doorbells``)."""
        if isinstance(message, EventsAppended):
            for user_pk, pos in message.targets:
                group = self._by_user.get(user_pk)
                if group:
                    frame = event_frame(pos, message.event_json)
                    for conn in group:
                        conn.offer_event(pos, frame)
        elif isinstance(message, StreamsAdvanced):
            for user_pk, pos in message.targets:
                for conn in self._by_user.get(user_pk, ()):
                    conn.hint(pos)
        elif isinstance(message, Signal):
            signal = message.frame
            for user_pk in message.user_pks:
                for conn in self._by_user.get(user_pk, ()):
                    if conn.session_id != message.exclude_session:
                        conn.offer_signal(signal)
        elif isinstance(message, SessionsRevoked):
            for session_id in message.session_ids:
                for conn in self._by_session.get(session_id, ()):
                    conn.revoke(message.reason, wipe=message.wipe)
        elif isinstance(message, Resync):
            for group in tuple(self._by_user.values()):
                for conn in group:
                    conn.resync()

    def close_all(self) -> None:
        for group in tuple(self._by_user.values()):
            for conn in group:
                conn.going_away()


def _add(groups: dict[K, Group], key: K, conn: LiveConnection) -> None:
    group: Group | None = groups.get(key)
    if group is None:
        groups[key] = (conn,)
    elif isinstance(group, dict):
        group[conn] = None
    elif conn not in group:
        grown: tuple[LiveConnection, ...] = (*group, conn)
        groups[key] = grown if len(grown) <= SMALL_GROUP else dict.fromkeys(grown, None)


def _discard(groups: dict[K, Group], key: K, conn: LiveConnection) -> None:
    group: Group | None = groups.get(key)
    if group is None or conn not in group:
        return
    if isinstance(group, dict):
        del group[conn]
        rest: Group = group
    else:
        rest = tuple(c for c in group if c is not conn)
    if rest:
        groups[key] = rest
    else:
        del groups[key]
