"""Ephemeral traffic on the event socket: typing signals in, typing updates out.

Typing is never stored, so it has no cursor and no replay: a ``signal`` frame is read once
and handed to the app; an update is sent only while a socket is open (a typing indicator
that cannot be delivered now is worthless later). The server answers each request with a
``response`` frame; typing's answer carries nothing, so it is not awaited. Both frames are
the shared protocol's (:mod:`chinwag.core.protocol`).
"""

from __future__ import annotations

import itertools

from chinwag.client.models import Typing
from chinwag.core.protocol import Method, Request, ServerFrame, TypingSignal
from chinwag.core.typing import TypingState

__all__ = ["typing_from_frame", "typing_request"]

_request_ids = itertools.count(1)


def typing_from_frame(frame: ServerFrame) -> Typing | None:
    """The :class:`Typing` a ``signal`` frame carries, or None for any other frame."""
    if not isinstance(frame, TypingSignal):
        return None
    return Typing(frame.conversation_id, frame.user_id, frame.state)


def typing_request(conversation_id: str, state: TypingState) -> bytes:
    """A ``typing.update`` request frame."""
    data = {"conversation_id": conversation_id, "state": state.value}
    return Request(f"typing-{next(_request_ids)}", Method.TYPING_UPDATE, data).serialize()
