"""A send's own rows in one statement on PostgreSQL: the message and the conversation's
last message.

Why: on PostgreSQL each statement is a round trip, and once statements stopped going
through SQLAlchemy's per-call machinery (``prepared_pg.py``) the round trips themselves
(a loopback ``send`` that wakes a backend) were most of a send's CPU in chinwag's process.
The message insert and the conversation's last message are joined into one statement with
a data-modifying CTE (``WITH m AS (INSERT … RETURNING …), c AS (UPDATE conversations …
FROM m) SELECT m.position FROM m``): the UPDATE takes the position the INSERT chose from
its ``RETURNING``, and when the INSERT does nothing (the app already has the public id)
neither does it. SQLite has no data-modifying CTEs, and its statements cost no round trip,
so it runs the two statements as before (``messages.py``).

The message's ``message.created`` event joins them too, when the caller knows the position
the insert will take (it holds the conversation's row lock, so it is the conversation's
``last_position + 1``) and has built the event's payload with it: ``e AS (INSERT INTO
events … SELECT … FROM m)`` writes it only when the message was inserted: one round
trip fewer per send.

So do the message's webhook row and push jobs (``outbox.py``), when the caller has built
their parameters: ``INSERT … SELECT … WHERE EXISTS (SELECT FROM m)``, so a retried send
that inserted nothing owes the outside world nothing either. One more round trip fewer.

The sender's read and delivered marks (a ``participants`` row) are *not* joined in,
though they follow from the insert too: the merge into members' streams that comes next
locks ``users`` rows and then writes ``participants`` (``spans.py``), and a send that
held its sender's ``participants`` row before locking ``users`` would deadlock against a
merge of that sender's stream (a read on their other device). So they are written with
the merge, in its own update of the sender's row (``spans.ReadMarks``).

A PostgreSQL lane's batch of sends runs this statement once per send but in one round trip
per conversation's turn (:func:`store_sent_together`, asyncpg's ``fetchmany``): each
send's event is built for its conversation's next position, so a round holds one send per
conversation, and a send that inserts nothing (a retry of a stored id) wrote nothing and
costs the others nothing (``handlers/messages._send_together``). With batches of eight
that took a send's round trips from 2.6 to 1.0 and its CPU in chinwag by a third
(``bench/README.md``).

The insert is also the send's membership check: it inserts only while the sender is an
active participant (``WHERE EXISTS`` on their ``participants`` row). The caller holds the
conversation's row lock, which every membership change takes too, and this statement
starts after the lock was granted, so it reads the membership the last lock holder left.
Read with the lock instead, in the lock's own statement, a joined row would be the one
from before the wait (read-committed re-evaluation re-reads only locked rows); read in a
statement of its own, it cost every send a round trip. A send refused here wrote nothing,
so the caller reads the membership only then, to say 404 or 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, String, bindparam, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage import messages as message_store
from chinwag.server.storage import push as push_store
from chinwag.server.storage import webhook_outbox as webhook_store
from chinwag.server.storage.engines import is_postgres
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import (
    conversations,
    events,
    messages,
    participants,
    push_jobs,
    webhook_outbox,
)

__all__ = [
    "SentEvent",
    "Stored",
    "joins_event",
    "store_sent",
    "store_sent_together",
]


def _in_one_statement(*, with_event: bool = False, with_outbox: bool = False) -> Prepared:
    new = message_store.NEW_MESSAGE
    active_sender = (
        select(literal(1))
        .select_from(participants)
        .where(
            participants.c.conversation_id == bindparam("conv_id"),
            participants.c.user_pk == bindparam("sender_pk"),
            participants.c.left_at.is_(None),
        )
        .exists()
    )
    inserted = (
        pg_insert(messages)
        .from_select(list(new), select(*new.values()).where(active_sender))
        .on_conflict_do_nothing()
        .returning(
            messages.c.position, messages.c.id, messages.c.sent_at, messages.c.conversation_id
        )
        .cte("m")
    )
    last = (
        update(conversations)
        .where(conversations.c.id == inserted.c.conversation_id)
        .values(
            last_position=inserted.c.position,
            last_message_id=inserted.c.id,
            last_message_at=inserted.c.sent_at,
        )
    )
    query = select(inserted.c.position).add_cte(last.cte("c"))
    if with_event:
        event = insert(events).from_select(
            ["app_id", "type", "conversation_id", "payload", "created_at", "log_position"],
            select(
                bindparam("e_app_id", type_=String),
                bindparam("e_type", type_=String),
                inserted.c.conversation_id,
                bindparam("e_payload", type_=String),
                bindparam("e_created_at", type_=Float),
                inserted.c.position,
            ),
        )
        query = query.add_cte(event.cte("e"))
    if with_outbox:
        inserted_one = select(literal(1)).select_from(inserted).exists()
        webhook = webhook_store.enqueue_statement(inserted_one)
        push = push_store.enqueue_statement(inserted_one)
        written = (
            select(func.count())
            .select_from(webhook.returning(webhook_outbox.c.id).cte("w"))
            .scalar_subquery()
            + select(func.count())
            .select_from(push.returning(push_jobs.c.id).cte("p"))
            .scalar_subquery()
        )
        query = query.add_columns(written)
    return Prepared(query.add_columns(inserted.c.id))  # last: which send a row is


_STORE_SENT = _in_one_statement()
_STORE_SENT_WITH_EVENT = _in_one_statement(with_event=True)
_STORE_SENT_WITH_OUTBOX = _in_one_statement(with_event=True, with_outbox=True)


@dataclass(frozen=True, slots=True)
class SentEvent:
    """A message's ``message.created`` event, built for the position it will take."""

    event_type: str
    payload: bytes
    position: int
    outbox: dict[str, Any] | None = None
    """The parameters of its webhook row and push jobs (``outbox.message_outbox``), to
    write them with it; None: the caller writes what is owed."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A message inserted at ``position``."""

    position: int
    outbox: bool | None = None
    """Whether its webhook row or push jobs were written with it (None: not attempted)."""


def joins_event(conn: AsyncConnection) -> bool:
    """Whether :func:`store_sent` can write the message's event in its own statement."""
    return is_postgres(conn)


async def store_sent(
    conn: AsyncConnection, values: dict[str, Any], event: SentEvent | None = None
) -> Stored | None:
    """Insert the message ``values`` (every column but ``position``) at the conversation's
    next position and make it the conversation's last message; its position, or None when
    the app already has the public id or, on PostgreSQL, the sender (``sender_pk``) is not
    an active participant (and then nothing is written). ``event`` (only where
    :func:`joins_event`): its row is written with the message, at ``event.position``,
    which must be the position the message takes; with its ``outbox``, those rows too."""
    if event is not None:
        if not joins_event(conn):
            raise ValueError("this engine writes the message's event separately")
        params = _with_event(values, event)
        statement = _STORE_SENT_WITH_OUTBOX if event.outbox is not None else _STORE_SENT_WITH_EVENT
        row = await statement.first(conn, params)
        if row is None:
            return None
        if int(row[0]) != event.position:  # the caller's lock did not hold: write nothing
            raise RuntimeError(f"message took position {row[0]}, not {event.position}")
        return Stored(event.position, int(row[1]) > 0 if event.outbox is not None else None)
    if not is_postgres(conn):
        position = await message_store.insert_message(conn, values)
        if position is not None:
            await message_store.record_last_message(
                conn, values["conversation_id"], position=position,
                message_id=values["id"], now=values["sent_at"],
            )  # fmt: skip
        return Stored(position) if position is not None else None
    params = {**values, "conv_id": values["conversation_id"]}
    row = await _STORE_SENT.first(conn, params)
    return Stored(int(row[0])) if row is not None else None


def _with_event(values: dict[str, Any], event: SentEvent) -> dict[str, Any]:
    params = {
        **values,
        "conv_id": values["conversation_id"],
        "e_app_id": values["app_id"],
        "e_type": event.event_type,
        "e_payload": event.payload.decode(),
        "e_created_at": values["sent_at"],
    }
    if event.outbox is not None:
        params |= event.outbox | {"now": values["sent_at"]}
    return params


async def store_sent_together(
    conn: AsyncConnection, sends: list[tuple[dict[str, Any], SentEvent]]
) -> list[Stored | None]:
    """:func:`store_sent` of each ``(values, event)``, in order, in one round trip on
    PostgreSQL (``Prepared.each``); every event has its ``outbox``, and no two sends are to
    one conversation (each event's position is its conversation's next). None for a send
    that inserted nothing (a repeated id, a sender no longer a member): like
    :func:`store_sent`, it wrote nothing, and the others stand. A message that took
    another position than its event's means the caller's locks did not hold: raised, as
    :func:`store_sent` raises it, so the batch is rolled back."""
    if not all(joins_event(conn) and event.outbox is not None for _, event in sends):
        raise ValueError("store_sent_together writes each message with its event and outbox")
    if len({values["conversation_id"] for values, _ in sends}) != len(sends):
        raise ValueError("store_sent_together takes one send per conversation")
    rows = await _STORE_SENT_WITH_OUTBOX.each(conn, [_with_event(v, e) for v, e in sends])
    by_id = {str(row[2]): row for row in rows}
    stored: list[Stored | None] = []
    for values, event in sends:
        row = by_id.get(values["id"])
        if row is not None and int(row[0]) != event.position:
            raise RuntimeError(f"message took position {row[0]}, not {event.position}")
        stored.append(Stored(event.position, int(row[1]) > 0) if row is not None else None)
    return stored
