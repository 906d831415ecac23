"""Messages: position allocation, paging, deletion and per-user hiding. SQL only.

A message takes the position after its conversation's ``last_position`` in the INSERT
itself (a scalar subquery), and the conversation then records it. The caller holds the
conversation's row lock (``SELECT … FOR UPDATE`` in PostgreSQL; in SQLite the single
connection serialises writers anyway), so positions in one conversation are handed out
(and committed) one at a time and never collide. Inserting first means a reused id costs
nothing to undo: the INSERT does nothing and nothing else has been written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Float, Select, bindparam, case, func, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.blocks import blocked_sender_filter
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import conversations, hidden_messages, messages, users

__all__ = [
    "MAX_PAGE_BYTES",
    "MessageRow",
    "Visibility",
    "get_message",
    "get_message_by_public_id",
    "hide_message",
    "insert_message",
    "last_visible",
    "mark_deleted",
    "page",
    "reassign_hidden",
    "reassign_sender",
    "record_last_message",
    "unread_count",
]


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    """Internal and server-wide (``hidden_messages`` and ``last_message_id`` refer to it);
    clients see ``public_id``, unique per app."""
    app_id: str
    public_id: str
    conversation_id: str
    """The conversation's internal id."""
    position: int
    sender_pk: int | None
    sender_id: str | None
    parts: str
    size: int
    sent_at: float
    deleted_at: float | None
    sender_bot: bool = False
    """The sender is a bot identity (``users.bot``)."""


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which of a conversation's messages one user may see (never those of a user they
    blocked: see ``storage.blocks``)."""

    user_pk: int
    above: int
    """Positions at or below this were deleted from the user's devices (hidden_position)."""
    up_to: int | None
    """A former participant sees nothing after the position at which they left."""


MAX_PAGE_BYTES = 1024 * 1024
"""A page of messages stops before the message that would take its bodies (``size``, as
counted for ``max_message_bytes``) past this many bytes; a single larger message still
comes alone. Without it one ``limit=500`` page of 64 KiB messages held 32 MiB in memory
(more as JSON), and a client may ask for pages hundreds of times a second."""

_JOINED = {"sender_id": users.c.user_id, "sender_bot": users.c.bot}
"""``MessageRow`` fields read from the sender's ``users`` row."""
_STORED = [f for f in MessageRow.__slots__ if f not in _JOINED]
"""The ``messages`` columns, in ``MessageRow`` order."""


def _from_tuple(row: Sequence[Any]) -> MessageRow:
    """From a row in ``MessageRow`` field order (``_GET_MESSAGE``'s)."""
    id_, app_id, public, conv_id, position, sender_pk, sender_id, parts, size, sent, deleted = row[
        :11
    ]
    return MessageRow(
        id=id_,
        app_id=app_id,
        public_id=public,
        conversation_id=conv_id,
        position=int(position),
        sender_pk=sender_pk,
        sender_id=sender_id,
        parts=parts,
        size=int(size),
        sent_at=float(sent),
        deleted_at=deleted,
        sender_bot=bool(row[11]),
    )


_MESSAGE = select(
    *[_JOINED[f] if f in _JOINED else messages.c[f] for f in MessageRow.__slots__]
).select_from(messages.outerjoin(users, users.c.pk == messages.c.sender_pk))
_GET_MESSAGE = Prepared(_MESSAGE.where(messages.c.id == bindparam("message_id")))
_GET_MESSAGE_BY_PUBLIC_ID = Prepared(
    _MESSAGE.where(
        messages.c.app_id == bindparam("app_id"), messages.c.public_id == bindparam("public_id")
    )
)
_RECORD_LAST = Prepared(
    update(conversations)
    .where(conversations.c.id == bindparam("conv_id"))
    .values(
        last_position=bindparam("position", type_=BigInteger),
        last_message_id=bindparam("message_id"),
        last_message_at=bindparam("now", type_=Float),
    )
)
NEW_MESSAGE: dict[str, Any] = {
    f: bindparam(f, type_=messages.c[f].type) for f in _STORED if f != "position"
}
NEW_MESSAGE["position"] = (
    select(conversations.c.last_position + 1)
    .where(conversations.c.id == bindparam("conv_id"))
    .scalar_subquery()
)
_INSERT_MESSAGE = Prepared(
    sqlite_insert(messages)
    .values(NEW_MESSAGE)
    .on_conflict_do_nothing()
    .returning(messages.c.position),
    postgresql=pg_insert(messages)
    .values(NEW_MESSAGE)
    .on_conflict_do_nothing()
    .returning(messages.c.position),
)


def _unread_count(*, left: bool) -> Prepared:
    """Visible, undeleted messages from others above a read watermark (``unread_count``);
    ``left``: the reader left the conversation at ``up_to``."""
    query = (
        select(func.count())
        .select_from(messages)
        .where(
            messages.c.conversation_id == bindparam("conversation_id"),
            messages.c.position > bindparam("above", type_=BigInteger),
            messages.c.id.not_in(
                select(hidden_messages.c.message_id).where(
                    hidden_messages.c.user_pk == bindparam("user_pk")
                )
            ),
            messages.c.position > bindparam("read_position", type_=BigInteger),
            messages.c.deleted_at.is_(None),
            messages.c.sender_pk.is_(None) | (messages.c.sender_pk != bindparam("user_pk")),
            blocked_sender_filter(bindparam("user_pk")),
        )
    )
    if left:
        query = query.where(messages.c.position <= bindparam("up_to", type_=BigInteger))
    return Prepared(query)


_UNREAD_COUNT = _unread_count(left=False)
_UNREAD_COUNT_LEFT = _unread_count(left=True)


def _last_visible(*, left: bool) -> Prepared:
    """The newest message a reader sees (``last_visible``), as :func:`_visible` filters;
    prepared, as building it per conversation was half the cost of a conversation list."""
    query = _MESSAGE.where(
        messages.c.conversation_id == bindparam("conversation_id"),
        messages.c.position > bindparam("above", type_=BigInteger),
        messages.c.id.not_in(
            select(hidden_messages.c.message_id).where(
                hidden_messages.c.user_pk == bindparam("user_pk")
            )
        ),
        blocked_sender_filter(bindparam("user_pk")),
    )
    if left:
        query = query.where(messages.c.position <= bindparam("up_to", type_=BigInteger))
    return Prepared(query.order_by(messages.c.position.desc()).limit(1))


_LAST_VISIBLE = _last_visible(left=False)
_LAST_VISIBLE_LEFT = _last_visible(left=True)


def _select() -> Select[Any]:
    return select(
        messages, users.c.user_id.label("sender_id"), users.c.bot.label("sender_bot")
    ).outerjoin(users, users.c.pk == messages.c.sender_pk)


def _row(row: Any, parts: dict[str, str] | None = None) -> MessageRow:
    """``parts``: bodies read apart from the row (``page``), by message id."""
    m = row._mapping
    return MessageRow(
        id=m["id"],
        app_id=m["app_id"],
        public_id=m["public_id"],
        conversation_id=m["conversation_id"],
        position=int(m["position"]),
        sender_pk=m["sender_pk"],
        sender_id=m["sender_id"],
        parts=m["parts"] if m["parts"] is not None else (parts or {})[m["id"]],
        size=int(m["size"]),
        sent_at=float(m["sent_at"]),
        deleted_at=m["deleted_at"],
        sender_bot=bool(m["sender_bot"]),
    )


def _visible(query: Select[Any], conversation_id: str, seen: Visibility | None) -> Select[Any]:
    """``seen`` None: the whole conversation, as the app's own server reads it (it is no
    participant, so no one user's hides, blocks or leaving narrow it)."""
    query = query.where(messages.c.conversation_id == conversation_id)
    if seen is None:
        return query
    hidden = select(hidden_messages.c.message_id).where(hidden_messages.c.user_pk == seen.user_pk)
    query = query.where(
        messages.c.position > seen.above,
        messages.c.id.not_in(hidden),
        blocked_sender_filter(seen.user_pk),
    )
    if seen.up_to is not None:
        query = query.where(messages.c.position <= seen.up_to)
    return query


async def insert_message(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert at the conversation's next position and return it; None when the app already
    has the public id (in any of its conversations), and then nothing is written.

    ``values`` has every column of ``messages`` but ``position``. The caller holds the
    conversation's row lock and then calls :func:`record_last_message`."""
    row = await _INSERT_MESSAGE.first(conn, {**values, "conv_id": values["conversation_id"]})
    return int(row[0]) if row is not None else None


async def record_last_message(
    conn: AsyncConnection, conversation_id: str, *, position: int, message_id: str, now: float
) -> None:
    """The conversation's newest message is now ``message_id`` at ``position``."""
    params = {
        "conv_id": conversation_id,
        "position": position,
        "message_id": message_id,
        "now": now,
    }
    await _RECORD_LAST.rowcount(conn, params)


async def get_message(conn: AsyncConnection, message_id: str) -> MessageRow | None:
    """By internal id."""
    row = await _GET_MESSAGE.first(conn, {"message_id": message_id})
    return _from_tuple(row) if row else None


async def get_message_by_public_id(
    conn: AsyncConnection, app_id: str, public_id: str
) -> MessageRow | None:
    row = await _GET_MESSAGE_BY_PUBLIC_ID.first(conn, {"app_id": app_id, "public_id": public_id})
    return _from_tuple(row) if row else None


async def page(
    conn: AsyncConnection,
    conversation_id: str,
    seen: Visibility | None,
    *,
    after: int | None,
    before: int | None,
    limit: int,
    max_bytes: int = MAX_PAGE_BYTES,
) -> tuple[list[MessageRow], bool]:
    """Up to ``limit`` visible messages (``seen`` None: all of them, as in :func:`_visible`),
    ascending, and whether more lie in that direction.

    With ``after`` the page starts just above it; otherwise it ends just below ``before``
    (or at the newest message). The page also ends before the message that would take it
    past ``max_bytes`` (at least one comes). So that the bound holds in memory too, the
    statement returns the parts only of messages small enough that a whole page of them
    fits (as ``events.read_stream_page`` does); the larger ones the page keeps are read
    after, by id."""
    share = max_bytes // (limit + 1)
    small_parts = case((messages.c.size <= share, messages.c.parts), else_=null())
    columns = [small_parts.label("parts") if c.name == "parts" else c for c in messages.c]
    query: Select[Any] = select(
        *columns, users.c.user_id.label("sender_id"), users.c.bot.label("sender_bot")
    ).outerjoin(users, users.c.pk == messages.c.sender_pk)
    query = _visible(query, conversation_id, seen)
    if after is not None:
        query = query.where(messages.c.position > after)
    if before is not None:
        query = query.where(messages.c.position < before)
    order = messages.c.position.asc() if after is not None else messages.c.position.desc()
    found = list(await conn.execute(query.order_by(order).limit(limit + 1)))
    kept: list[Any] = []
    total = 0
    for row in found[:limit]:  # nearest the anchor first
        total += int(row.size)
        if kept and total > max_bytes:
            break
        kept.append(row)
    has_more = len(found) > len(kept)
    missing = [row.id for row in kept if row.parts is None]
    parts: dict[str, str] = {}
    if missing:
        read = select(messages.c.id, messages.c.parts).where(messages.c.id.in_(missing))
        parts = {message_id: body for message_id, body in await conn.execute(read)}
    rows = [_row(row, parts) for row in kept]
    if after is None:
        rows.reverse()
    return rows, has_more


async def last_visible(
    conn: AsyncConnection, conversation_id: str, seen: Visibility
) -> MessageRow | None:
    params: dict[str, object] = {
        "conversation_id": conversation_id,
        "user_pk": seen.user_pk,
        "above": seen.above,
    }
    query = _LAST_VISIBLE
    if seen.up_to is not None:
        params["up_to"] = seen.up_to
        query = _LAST_VISIBLE_LEFT
    row = await query.first(conn, params)
    return _from_tuple(row) if row else None


async def unread_count(
    conn: AsyncConnection, conversation_id: str, seen: Visibility, *, read_position: int
) -> int:
    """Visible, undeleted messages from others (a NULL sender, a removed user, counts as
    other) above the user's read watermark."""
    params: dict[str, object] = {
        "conversation_id": conversation_id,
        "user_pk": seen.user_pk,
        "above": seen.above,
        "read_position": read_position,
    }
    query = _UNREAD_COUNT
    if seen.up_to is not None:
        params["up_to"] = seen.up_to
        query = _UNREAD_COUNT_LEFT
    row = await query.first(conn, params)
    assert row is not None
    return int(row[0])


async def mark_deleted(conn: AsyncConnection, message_id: str, *, now: float) -> bool:
    """Delete for everyone: keep the row (and its position) but drop the content."""
    result = await conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.deleted_at.is_(None))
        .values(deleted_at=now, parts="[]", size=0)
    )
    return bool(result.rowcount)


async def hide_message(conn: AsyncConnection, user_pk: int, message_id: str) -> bool:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = await conn.execute(
        dialect_insert(hidden_messages)
        .values(user_pk=user_pk, message_id=message_id)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)


async def reassign_sender(
    conn: AsyncConnection, conversation_id: str, from_pk: int, to_pk: int
) -> None:
    await conn.execute(
        update(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.sender_pk == from_pk)
        .values(sender_pk=to_pk)
    )


async def reassign_hidden(conn: AsyncConnection, from_pk: int, to_pk: int) -> None:
    """Move one user's hidden messages to another, skipping ones the other already hid."""
    theirs = select(hidden_messages.c.message_id).where(hidden_messages.c.user_pk == to_pk)
    await conn.execute(
        update(hidden_messages)
        .where(hidden_messages.c.user_pk == from_pk, hidden_messages.c.message_id.not_in(theirs))
        .values(user_pk=to_pk)
    )
