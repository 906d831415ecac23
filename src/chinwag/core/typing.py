"""Typing indicators as a table: (state, input) → state, with time passed in.

A typist's device says ``started``, ``paused`` or ``finished``; devices go quiet without
saying ``finished`` (the app is backgrounded, the network drops), so the server supplies the
missing inputs as ``silence``. Silence moves a typist that said ``started`` to ``paused``
after ``pause_after`` seconds without an update, and a ``paused`` typist to ``finished``
``finish_after`` seconds after it paused. ``finished`` is the end: the typist is forgotten.

::

    (none)|STARTED|PAUSED|FINISHED --started--> STARTED
    (none)|STARTED|PAUSED|FINISHED --paused-->  PAUSED
    (none)|STARTED|PAUSED|FINISHED --finished--> FINISHED
    STARTED --silence--> PAUSED --silence--> FINISHED

Only changes are announced: a device repeating ``started`` while its user types keeps the
indicator alive without sending anything to the other participants. Announcements are then
coalesced (:class:`Relay`): at most one per typist per conversation per ``interval``; a
change inside the window waits for its end, and the latest state is the one relayed (so a
``finished`` is never lost, and ten thousand flips cost a handful of frames, not ten
thousand). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "TYPING_TRANSITIONS",
    "IllegalTypingTransition",
    "Relay",
    "TypingInput",
    "TypingState",
    "Typist",
    "apply_silence",
    "apply_update",
    "flush_relay",
    "offer_relay",
    "relay_spent",
    "silence_due",
]


class TypingState(StrEnum):
    STARTED = "started"
    PAUSED = "paused"
    FINISHED = "finished"


class TypingInput(StrEnum):
    STARTED = "started"
    PAUSED = "paused"
    FINISHED = "finished"
    SILENCE = "silence"


class IllegalTypingTransition(ValueError):
    """An input arrived in a state where the table has no move for it (a driver bug)."""

    def __init__(self, state: TypingState, event: TypingInput) -> None:
        self.state = state
        self.event = event
        super().__init__(f"typing: input {event.value!r} is not allowed in state {state.value!r}")


def _client_moves() -> dict[tuple[TypingState, TypingInput], TypingState]:
    return {
        (state, TypingInput(target.value)): target
        for state in TypingState
        for target in TypingState
    }


TYPING_TRANSITIONS: Mapping[tuple[TypingState, TypingInput], TypingState] = {
    **_client_moves(),
    (TypingState.STARTED, TypingInput.SILENCE): TypingState.PAUSED,
    (TypingState.PAUSED, TypingInput.SILENCE): TypingState.FINISHED,
}


@dataclass(frozen=True, slots=True)
class Typist:
    """One user's indicator in one conversation; ``since`` is when it last changed or was
    confirmed by the device."""

    state: TypingState
    since: float


def _next(state: TypingState, event: TypingInput) -> TypingState:
    try:
        return TYPING_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTypingTransition(state, event) from None


def apply_update(
    typist: Typist | None, requested: TypingState, *, now: float
) -> tuple[Typist, bool]:
    """A device's update: the new typist, and whether the change must be announced.

    An unknown typist counts as ``finished`` (so a first ``finished`` announces nothing).
    """
    current = typist.state if typist is not None else TypingState.FINISHED
    target = _next(current, TypingInput(requested.value))
    return Typist(target, now), target is not current


def silence_due(typist: Typist, *, pause_after: float, finish_after: float) -> float | None:
    """When silence next moves this typist, or None when it never will."""
    if typist.state is TypingState.STARTED:
        return typist.since + pause_after
    if typist.state is TypingState.PAUSED:
        return typist.since + finish_after
    return None


def apply_silence(
    typist: Typist, *, now: float, pause_after: float, finish_after: float
) -> Typist | None:
    """The typist after silence up to ``now``: a moved typist (announce it), or None when
    nothing is due yet. A typist past both deadlines moves one step per call."""
    due = silence_due(typist, pause_after=pause_after, finish_after=finish_after)
    if due is None or now < due:
        return None
    return Typist(_next(typist.state, TypingInput.SILENCE), due)


@dataclass(frozen=True, slots=True)
class Relay:
    """What the other participants were last told about one typist (``shown``, at ``at``)
    and the change waiting for the window to end (``pending``)."""

    shown: TypingState
    at: float
    pending: TypingState | None = None


def offer_relay(
    relay: Relay | None, state: TypingState, *, now: float, interval: float
) -> tuple[Relay, bool, float | None]:
    """An announced change: (relay, relay it now?, when to flush the window or None).

    Outside a window the change goes at once and opens one; inside, it becomes ``pending``
    (replacing any earlier pending change) and the caller flushes at the returned time,
    which is only returned for the first pending change of a window.
    """
    if relay is None:
        relay = Relay(TypingState.FINISHED, -float("inf"))
    if relay.pending is not None:
        return Relay(relay.shown, relay.at, state), False, None
    if now - relay.at >= interval:
        return Relay(state, now), True, None
    return Relay(relay.shown, relay.at, state), False, relay.at + interval


def flush_relay(relay: Relay, *, interval: float) -> tuple[Relay, TypingState | None]:
    """The window has ended: (relay, the state to relay now or None).

    Nothing is relayed when the pending state is what the participants already see (a
    ``paused`` then ``started`` inside one window). A relayed change opens the next window
    at the end of this one.
    """
    if relay.pending is None or relay.pending is relay.shown:
        return Relay(relay.shown, relay.at), None
    return Relay(relay.pending, relay.at + interval), relay.pending


def relay_spent(relay: Relay, *, now: float, interval: float) -> bool:
    """Whether the relay can be forgotten: finished, nothing pending, its window over."""
    return (
        relay.shown is TypingState.FINISHED and relay.pending is None and now - relay.at >= interval
    )
