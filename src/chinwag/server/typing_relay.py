"""Drives :mod:`chinwag.core.typing` on the server: device updates in, signals out.

Typing is never stored. The node a typist's device is connected to keeps that typist's
state and announces changes as broker ``Signal`` doorbells, so participants connected to
any node see them. Silence is supplied by :meth:`TypingRelay.sweep`, which the server calls
periodically with ``services.now()``; tests move a ManualClock and wait for the next sweep.

Announcements are coalesced per typist and conversation (``core.typing.Relay``): a change
inside the ``interval`` after the last one waits for a timer at the window's end, and then
only the latest state goes out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from chinwag.core.typing import (
    Relay,
    TypingState,
    Typist,
    apply_silence,
    apply_update,
    flush_relay,
    offer_relay,
    relay_spent,
)
from chinwag.server.broker import Doorbell, EventsAppended, Signal

__all__ = ["TypingRelay", "participants_removed"]

_REMOVED = b'{"type":"conversation.participants_removed"'


def participants_removed(doorbell: EventsAppended) -> tuple[str, frozenset[int]] | None:
    """(conversation id, the members left) when the doorbell rings for a removal. Every
    node hears it, so every node's relay can forget the removed user at once. The prefix
    test keeps other events (nearly all of them) from being decoded."""
    if not doorbell.event_json.startswith(_REMOVED):
        return None
    data = orjson.loads(doorbell.event_json)["data"]
    return str(data["conversation_id"]), frozenset(pk for pk, _ in doorbell.targets)


@dataclass(slots=True)
class _Entry:
    typist: Typist
    user_id: str
    audience: tuple[int, ...]
    """The other active participants when the typist last updated."""


@dataclass(slots=True)
class _Relayed:
    relay: Relay
    user_id: str
    audience: tuple[int, ...]


CallLater = Callable[[float, Callable[[], None]], object]


def _call_later(delay: float, callback: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay, callback)


class TypingRelay:
    def __init__(
        self,
        publish: Callable[[Doorbell], None],
        *,
        pause_after: float,
        finish_after: float,
        interval: float = 0.3,
        call_later: CallLater = _call_later,
    ) -> None:
        self._publish = publish
        self._pause_after = pause_after
        self._finish_after = finish_after
        self._typists: dict[tuple[str, int], _Entry] = {}
        self._interval = interval
        self._call_later = call_later
        self._relays: dict[tuple[str, int], _Relayed] = {}

    def __len__(self) -> int:
        return len(self._typists)

    def update(
        self,
        *,
        conversation_id: str,
        user_pk: int,
        user_id: str,
        audience: Sequence[int],
        state: TypingState,
        now: float,
    ) -> None:
        """A device's ``typing.update``; ``audience`` are the conversation's active
        participants (the typist is left out of it here)."""
        key = (conversation_id, user_pk)
        entry = self._typists.get(key)
        typist, announce = apply_update(entry.typist if entry else None, state, now=now)
        others = tuple(sorted(pk for pk in set(audience) if pk != user_pk))
        if typist.state is TypingState.FINISHED:
            self._typists.pop(key, None)
        else:
            self._typists[key] = _Entry(typist, user_id, others)
        if announce:
            self._relay(key, user_id, others, typist.state, now)

    def members_changed(self, conversation_id: str, members: frozenset[int]) -> None:
        """Participants were removed; ``members`` are the ones left. A removed typist is
        announced finished and forgotten; a removed listener is dropped from every audience
        at once, so nobody outside a conversation gets its typing, not even the silence."""
        for key, entry in list(self._typists.items()):
            if key[0] != conversation_id or not (members & {key[1], *entry.audience}):
                continue  # conversation ids are per app: one of another app's has no member here
            entry.audience = tuple(pk for pk in entry.audience if pk in members)
            if key[1] not in members:
                del self._typists[key]
                self._announce(conversation_id, entry.user_id, entry.audience, TypingState.FINISHED)

    def sweep(self, now: float) -> None:
        """Apply silence to every typist; announce and forget as the table says."""
        for key, relayed in list(self._relays.items()):
            if relay_spent(relayed.relay, now=now, interval=self._interval):
                del self._relays[key]
        for key, entry in list(self._typists.items()):
            moved = apply_silence(
                entry.typist,
                now=now,
                pause_after=self._pause_after,
                finish_after=self._finish_after,
            )
            if moved is None:
                continue
            if moved.state is TypingState.FINISHED:
                del self._typists[key]
            else:
                entry.typist = moved
            self._relay(key, entry.user_id, entry.audience, moved.state, now)

    def _relay(
        self,
        key: tuple[str, int],
        user_id: str,
        audience: tuple[int, ...],
        state: TypingState,
        now: float,
    ) -> None:
        """Announce now, or when the typist's window ends (see ``core.typing.offer_relay``)."""
        found = self._relays.get(key)
        relay, send, flush_at = offer_relay(
            found.relay if found else None, state, now=now, interval=self._interval
        )
        self._relays[key] = _Relayed(relay, user_id, audience)
        if send:
            self._announce(key[0], user_id, audience, state)
        elif flush_at is not None:
            self._call_later(max(0.0, flush_at - now), lambda: self._flush(key))

    def _flush(self, key: tuple[str, int]) -> None:
        relayed = self._relays.get(key)
        if relayed is None:
            return
        relayed.relay, state = flush_relay(relayed.relay, interval=self._interval)
        if state is not None:
            self._announce(key[0], relayed.user_id, relayed.audience, state)

    def _announce(
        self, conversation_id: str, user_id: str, audience: tuple[int, ...], state: TypingState
    ) -> None:
        if audience:
            self._publish(
                Signal(
                    user_pks=audience, conversation_id=conversation_id, user_id=user_id, state=state
                )
            )
