"""A message for every member of a conversation: written once, to the conversation's log.

Why: a message used to place an index row in each member's stream and bump each member's
``stream_head`` in the send's transaction: O(N) rows per message, ~20 ms of server CPU and
~31 KB stored per message at N = 1,000 (issue #13). Now the send writes the message's
``message.created`` event once, at its conversation log position (the message's dense
``position``, handed out under the conversation's row lock), and members' streams get it
by merging (``storage/spans.py``): lazily, before any read of a stream, and after commit
for the members with live sockets (``server/live_merge.py``).

A small conversation (at most :data:`EAGER_MEMBERS` participants, every 1:1 among them) is
merged in the send's own transaction: a handful of rows, and the doorbell can then carry
the event itself to each member's sockets, as before, with no second transaction between
the send and the devices. Same storage, same spans; only *when* the merge runs differs.

On PostgreSQL the sends of one batch (``pg_batching.py``) merge together, just before the
batch commits (:class:`MergesAtCommit`): three statements for the batch (the users'
locks, the pending read, the writes; ``spans.merge_conversations``) where each send took
three. A job that is not such a send first has the merges before it done, so it sees
every stream as the sends left it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.events import Appended, event_payload, insert_event
from chinwag.server.storage.outbox import write_outbox
from chinwag.server.storage.spans import (
    Merged,
    ReadMarks,
    merge_conversation,
    merge_conversations,
    write_marks,
)

if TYPE_CHECKING:
    from chinwag.server.storage.database import Transaction

__all__ = ["EAGER_MEMBERS", "MergesAtCommit", "append_message"]

EAGER_MEMBERS = 8
"""Up to this many participants, a send merges the message into every member's stream at
once (O(members) small writes, paid only while members are few)."""


async def append_message(
    conn: AsyncConnection,
    *,
    app_id: str,
    conversation_id: str,
    position: int,
    event_type: str,
    data: dict[str, Any],
    now: float,
    eager: bool,
    stored: bytes | None = None,
    marks: ReadMarks | None = None,
    outbox: bool | None = None,
) -> Appended:
    """Write ``message.created`` at log ``position`` of ``conversation_id``; when ``eager``,
    merge it into the members' streams now. What to announce after commit: the readers'
    positions when eager, none otherwise (the caller rings the conversation's doorbell).
    ``stored``: the event's payload, already written with the message (PostgreSQL:
    ``message_send.store_sent``). ``marks``: the sender's read and delivered watermarks,
    written with the merge (``spans.merge_conversation``). ``outbox``: whether its webhook
    and push rows were written with the message (None: they are written here)."""
    payload = stored
    if payload is None:
        payload = event_payload(event_type, data, now)
        await insert_event(
            conn, app_id=app_id, event_type=event_type, payload=payload, now=now,
            conversation_id=conversation_id, log_position=position,
        )  # fmt: skip
    targets: list[tuple[int, int]] = []
    if eager:
        targets = _readers(await merge_conversation(conn, conversation_id, marks=marks), position)
    elif marks is not None:
        await write_marks(conn, conversation_id, marks)
    if outbox is None:
        outbox = await write_outbox(
            conn, app_id=app_id, event_type=event_type, data=data, now=now,
            conversation_id=conversation_id, readers=[pk for pk, _ in targets],
        )  # fmt: skip
    return Appended(
        app_id=app_id, event_json=payload, targets=tuple(sorted(targets)), outbox=outbox
    )


def _readers(added: list[Merged], position: int) -> list[tuple[int, int]]:
    """(user, stream position) of log ``position`` in what a merge ``added``."""
    targets = []
    for run in added:
        offset = position - run.first_log
        if 0 <= offset < run.count:
            targets.append((run.user_pk, run.pos + offset))
    return targets


@dataclass(frozen=True, slots=True)
class _Sent:
    conversation_id: str
    position: int
    app_id: str
    payload: bytes
    marks: ReadMarks
    outbox: bool
    announce: Callable[[Appended], None]


@dataclass(slots=True)
class MergesAtCommit:
    """The merges of a batch's sends to small conversations, done together before commit
    (``Transaction.before_commit``; module docstring)."""

    _sent: list[_Sent] = field(default_factory=list)

    def add(
        self,
        *,
        app_id: str,
        conversation_id: str,
        position: int,
        stored: bytes,
        marks: ReadMarks,
        outbox: bool,
        announce: Callable[[Appended], None],
    ) -> None:
        """Merge ``message.created`` at log ``position`` of ``conversation_id`` into every
        member's stream, with the sender's ``marks``, before the commit; then ``announce``
        what :func:`append_message` would have returned (called before the commit: it may
        only queue work for after it). The event, its webhook row and push jobs were
        written with the message (``message_send.store_sent``); ``outbox``: whether any of
        those rows were owed."""
        sent = _Sent(conversation_id, position, app_id, stored, marks, outbox, announce)
        self._sent.append(sent)

    async def settle(self, tx: Transaction) -> None:
        sent, self._sent = self._sent, []
        merges = [(s.conversation_id, s.marks) for s in sent]
        added = await merge_conversations(tx.conn, merges)
        for s in sent:
            targets = _readers(added.get(s.conversation_id, []), s.position)
            s.announce(
                Appended(
                    app_id=s.app_id, event_json=s.payload, targets=tuple(sorted(targets)),
                    outbox=s.outbox,
                )
            )  # fmt: skip
