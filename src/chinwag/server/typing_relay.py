"""Drives :mod:`chinwag.core.typing` on the server: device updates in, signals out.

Typing is never stored. The node a typist's device is connected to keeps that typist's
state and announces changes as broker ``Signal`` doorbells, so participants connected to
any node see them. Silence is supplied by :meth:`TypingRelay.sweep`, which the server calls
periodically with ``services.now()``; tests move a ManualClock and wait for the next sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chinwag.core.protocol import typing_frame
from chinwag.core.typing import TypingState, Typist, apply_silence, apply_update
from chinwag.server.broker import Doorbell, Signal

__all__ = ["TypingRelay"]


@dataclass(slots=True)
class _Entry:
    typist: Typist
    user_id: str
    audience: tuple[int, ...]
    """The other active participants when the typist last updated."""


class TypingRelay:
    def __init__(
        self, publish: Callable[[Doorbell], None], *, pause_after: float, finish_after: float
    ) -> None:
        self._publish = publish
        self._pause_after = pause_after
        self._finish_after = finish_after
        self._typists: dict[tuple[str, int], _Entry] = {}

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
            self._announce(conversation_id, user_id, others, typist.state)

    def sweep(self, now: float) -> None:
        """Apply silence to every typist; announce and forget as the table says."""
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
            self._announce(key[0], entry.user_id, entry.audience, moved.state)

    def _announce(
        self, conversation_id: str, user_id: str, audience: tuple[int, ...], state: TypingState
    ) -> None:
        if audience:
            self._publish(
                Signal(user_pks=audience, frame=typing_frame(conversation_id, user_id, state))
            )
