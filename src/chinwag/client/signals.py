"""Ephemeral traffic on the event socket: typing signals in, typing updates out.

Typing is never stored, so it has no cursor and no replay: a ``signal`` frame is read once
and handed to the app; an update is sent only while a socket is open (a typing indicator
that cannot be delivered now is worthless later). The server answers each request with a
``response`` frame; typing's answer carries nothing, so it is not awaited.

TEMPORARY: parses the frames itself until the shared wire-protocol module
(``chinwag.core.protocol``) has ``signal`` and ``request`` frames; then this uses those.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from chinwag.client.models import Typing
from chinwag.core.typing import TypingState

__all__ = ["typing_from_frame", "typing_request"]

_request_ids = itertools.count(1)


def typing_from_frame(body: dict[str, Any]) -> Typing | None:
    """The :class:`Typing` a ``signal`` frame carries, or None for any other frame."""
    if body.get("type") != "signal" or body.get("signal") != "typing":
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    try:
        return Typing(
            str(data["conversation_id"]), str(data["user_id"]), TypingState(data["state"])
        )
    except (KeyError, ValueError):
        return None  # a newer server's state this SDK does not know: skip, like events


def typing_request(conversation_id: str, state: TypingState) -> bytes:
    """A ``typing.update`` request frame."""
    return orjson.dumps(
        {
            "type": "request",
            "request_id": f"typing-{next(_request_ids)}",
            "method": "typing.update",
            "data": {"conversation_id": conversation_id, "state": state.value},
        }
    )
