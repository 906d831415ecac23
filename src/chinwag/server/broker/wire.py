"""What a doorbell looks like on a shared broker, and how an untrusted one is read.

Anyone who can publish to the broker's server can put bytes on a channel, so what travels
is only what a false copy cannot abuse: for events, ``(user_pk, position)`` pairs (a
receiving node reads the events from the store); for a big conversation's message,
``(conversation id, log position)`` (a receiving node merges from the store); for
revocations, session ids (the store says whether and how they ended); for typing, the
fields of a typing frame (rebuilt locally, so nothing else can reach a socket).
:func:`decode` checks every field's type and size and refuses a doorbell of another
deployment; anything it refuses is dropped.

One JSON object: ``{"v": 1, "d": deployment, "n": node, "k": kind, ...}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from chinwag.core.ids import MAX_USER_ID_LENGTH
from chinwag.core.typing import TypingState
from chinwag.server.broker.base import (
    ConversationAdvanced,
    Doorbell,
    EventsAppended,
    Resync,
    RevocationHint,
    SessionsRevoked,
    Signal,
    StreamsAdvanced,
)

__all__ = [
    "COALESCED_TARGETS",
    "MAX_DOORBELL_BYTES",
    "MAX_TARGETS",
    "WireError",
    "decode",
    "encode",
    "encode_all",
    "reduced",
]

MAX_DOORBELL_BYTES = 1 << 20
MAX_TARGETS = 50_000
"""More readers than any conversation has; a larger doorbell is refused, not read."""
COALESCED_TARGETS = 4096
"""Targets in one coalesced doorbell (:func:`encode_all`): ~60 KiB of JSON, far under
:data:`MAX_DOORBELL_BYTES` and :data:`MAX_TARGETS`."""
MAX_ID = 128
"""Conversation and session ids are short (``core.ids``); anything longer is not one."""


class WireError(ValueError):
    """A doorbell that is malformed, oversized or of another deployment."""


def encode(message: Doorbell, *, deployment: str, node: str) -> bytes:
    body: dict[str, Any] = {"v": 1, "d": deployment, "n": node}
    if isinstance(message, EventsAppended | StreamsAdvanced):
        body.update(k="a", t=message.targets)
        removed = _removed_from(message)
        if removed is not None:
            body["c"] = removed
    elif isinstance(message, ConversationAdvanced):
        body.update(k="c", c=message.conversation_id, p=message.position)
    elif isinstance(message, Signal):
        body.update(
            k="s",
            u=message.user_pks,
            c=message.conversation_id,
            i=message.user_id,
            s=message.state.value,
            x=message.exclude_session,
        )
    elif isinstance(message, SessionsRevoked | RevocationHint):
        body.update(k="r", s=message.session_ids)
    else:
        body.update(k="y")
    return orjson.dumps(body)


def reduced(message: Doorbell) -> Doorbell:
    """What of ``message`` another node may hear: an :class:`EventsAppended` as the
    :class:`StreamsAdvanced` it becomes on the wire, without its events (so a queue of
    doorbells to publish holds positions, not message bodies)."""
    if isinstance(message, EventsAppended):
        return StreamsAdvanced(message.targets, _removed_from(message))
    return message


def encode_all(messages: list[Doorbell], *, deployment: str, node: str) -> list[bytes]:
    """``messages`` as few wire messages as carry the same news, in the same order: a run
    of plain :class:`StreamsAdvanced` (no removal) becomes one, with each user's highest
    position (a hint's only content), at most :data:`COALESCED_TARGETS` targets each.
    Under load the sends of one group commit ring together, and each wire message costs
    a Redis round trip here and a receive and decode on every other node."""
    out: list[bytes] = []
    run: dict[int, int] = {}

    def flush() -> None:
        if run:
            merged = StreamsAdvanced(tuple(run.items()))
            out.append(encode(merged, deployment=deployment, node=node))
            run.clear()

    for message in messages:
        message = reduced(message)
        if isinstance(message, StreamsAdvanced) and message.removed_from is None:
            for user_pk, pos in message.targets:
                if pos > run.get(user_pk, 0):
                    run[user_pk] = pos
                if len(run) >= COALESCED_TARGETS:
                    flush()
            continue
        flush()
        out.append(encode(message, deployment=deployment, node=node))
    flush()
    return out


def _removed_from(message: EventsAppended | StreamsAdvanced) -> str | None:
    if isinstance(message, StreamsAdvanced):
        return message.removed_from
    from chinwag.server.typing_relay import participants_removed

    removed = participants_removed(message)
    return None if removed is None else removed[0]


def decode(raw: bytes, *, deployment: str) -> tuple[str, Doorbell]:
    """(the publishing node's id, the doorbell); :class:`WireError` for anything else."""
    if len(raw) > MAX_DOORBELL_BYTES:
        raise WireError("oversized doorbell")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError("not JSON") from exc
    if not isinstance(body, dict) or body.get("v") != 1 or body.get("d") != deployment:
        raise WireError("not a doorbell of this deployment")
    node = _text(body.get("n"), MAX_ID)
    kind = body.get("k")
    if kind == "a":
        removed = body.get("c")
        return node, StreamsAdvanced(
            targets=_targets(body.get("t")),
            removed_from=None if removed is None else _text(removed, MAX_ID),
        )
    if kind == "c":
        conversation_id = _text(body.get("c"), MAX_ID)
        return node, ConversationAdvanced(conversation_id, _pk(body.get("p")))
    if kind == "s":
        return node, _signal(body)
    if kind == "r":
        return node, RevocationHint(session_ids=_texts(body.get("s"), MAX_ID))
    if kind == "y":
        return node, Resync()
    raise WireError("unknown doorbell kind")


def _signal(body: dict[str, Any]) -> Signal:
    state = body.get("s")
    if state not in {s.value for s in TypingState}:
        raise WireError("not a typing state")
    exclude = body.get("x")
    return Signal(
        user_pks=_pks(body.get("u")),
        conversation_id=_text(body.get("c"), MAX_ID),
        user_id=_text(body.get("i"), MAX_USER_ID_LENGTH),
        state=TypingState(state),
        exclude_session=None if exclude is None else _text(exclude, MAX_ID),
    )


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise WireError("not a short string")
    return value


def _texts(value: object, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise WireError("not a list")
    return tuple(_text(item, limit) for item in value)


def _pk(value: object) -> int:
    # bool is an int subclass; JSON true is no user.
    if type(value) is not int or not 0 < value < 1 << 63:
        raise WireError("not a positive integer")
    return value


def _pks(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise WireError("not a list")
    return tuple(_pk(item) for item in value)


def _targets(value: object) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise WireError("not a list")
    targets = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise WireError("not a (user, position) pair")
        targets.append((_pk(pair[0]), _pk(pair[1])))
    return tuple(targets)
