"""The rules of the per-user event cursor and of the first (historic) sync.

The server numbers each user's stream densely: 1, 2, 3, … A device that has applied
events 1..N holds cursor N. So whether an incoming event is the next one, a repeat or a
jump over lost events is plain arithmetic, and the SDK never has to trust that a socket
delivered everything (the "silent gap" pain of other chat SDKs).

Historic sync policies (Layer's): all history, from the earliest unread message, or the
last N messages of each conversation. :func:`history_start` turns a policy and what the
server says about a conversation into the position to page from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CursorVerdict",
    "HistoryPolicy",
    "SyncPolicy",
    "classify",
    "history_start",
]


class CursorVerdict(StrEnum):
    APPLY = "apply"
    """Exactly the next event: apply it and advance."""
    DUPLICATE = "duplicate"
    """Already applied (a replay overlapping what we have): skip it."""
    GAP = "gap"
    """Events between were missed: fetch ``after=cursor`` before going on."""


def classify(cursor: int, incoming: int) -> CursorVerdict:
    """What to do with the event numbered ``incoming`` when we hold ``cursor``."""
    if cursor < 0 or incoming < 1:
        raise ValueError(f"cursor must be >= 0 and events >= 1, got {cursor} and {incoming}")
    if incoming <= cursor:
        return CursorVerdict.DUPLICATE
    if incoming == cursor + 1:
        return CursorVerdict.APPLY
    return CursorVerdict.GAP


class HistoryPolicy(StrEnum):
    ALL = "all"
    FROM_EARLIEST_UNREAD = "from_earliest_unread"
    LAST_N = "last_n"


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """How much history a fresh device downloads; the app chooses when it builds a Client."""

    policy: HistoryPolicy = HistoryPolicy.ALL
    count: int = 0
    """For ``LAST_N``: how many of the newest messages per conversation."""

    def __post_init__(self) -> None:
        if self.policy is HistoryPolicy.LAST_N and self.count < 1:
            raise ValueError(f"LAST_N needs a count >= 1, got {self.count}")

    @classmethod
    def all(cls) -> SyncPolicy:
        return cls(HistoryPolicy.ALL)

    @classmethod
    def from_earliest_unread(cls) -> SyncPolicy:
        return cls(HistoryPolicy.FROM_EARLIEST_UNREAD)

    @classmethod
    def last(cls, n: int) -> SyncPolicy:
        return cls(HistoryPolicy.LAST_N, n)


def history_start(policy: SyncPolicy, *, last_position: int, read_position: int) -> int:
    """The ``after`` position to page a conversation's messages from.

    ``FROM_EARLIEST_UNREAD`` with nothing unread still fetches the last message, so a
    conversation list can show it (Layer's ``UnreadOnly``).
    """
    last = max(0, last_position)
    if policy.policy is HistoryPolicy.ALL:
        return 0
    if policy.policy is HistoryPolicy.LAST_N:
        return max(0, last - policy.count)
    if read_position >= last:
        return max(0, last - 1)
    return max(0, read_position)
