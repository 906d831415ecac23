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
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.events import Appended, event_payload, insert_event
from chinwag.server.storage.outbox import write_outbox
from chinwag.server.storage.spans import ReadMarks, merge_conversation, write_marks

__all__ = ["EAGER_MEMBERS", "append_message"]

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
        for added in await merge_conversation(conn, conversation_id, marks=marks):
            offset = position - added.first_log
            if 0 <= offset < added.count:
                targets.append((added.user_pk, added.pos + offset))
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
