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

The sender's read and delivered marks (a ``participants`` row) are *not* joined in,
though they follow from the insert too: the merge into members' streams that comes next
locks ``users`` rows and then writes ``participants`` (``spans.py``), and a send that
held its sender's ``participants`` row before locking ``users`` would deadlock against a
merge of that sender's stream (a read on their other device). So the handler records
them after the merge (``conversations.record_send``).

The caller holds the conversation's row lock, as for the separate statements.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage import messages as message_store
from chinwag.server.storage.engines import is_postgres
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import conversations, messages

__all__ = ["store_sent"]


def _in_one_statement() -> Prepared:
    inserted = (
        pg_insert(messages)
        .values(message_store.NEW_MESSAGE)
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
    return Prepared(query)


_STORE_SENT = _in_one_statement()


async def store_sent(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert the message ``values`` (every column but ``position``) at the conversation's
    next position and make it the conversation's last message; its position, or None when
    the app already has the public id (and then nothing is written)."""
    if not is_postgres(conn):
        position = await message_store.insert_message(conn, values)
        if position is not None:
            await message_store.record_last_message(
                conn, values["conversation_id"], position=position,
                message_id=values["id"], now=values["sent_at"],
            )  # fmt: skip
        return position
    params = {**values, "conv_id": values["conversation_id"]}
    row = await _STORE_SENT.first(conn, params)
    return int(row[0]) if row is not None else None
