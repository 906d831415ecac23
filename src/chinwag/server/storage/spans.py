"""Merging a conversation's log into its members' streams, as spans.

Why: a message is written once, at its conversation's log position (the message's dense
``position``, handed out under the conversation's row lock), not once per member (issue
#13). Each member's stream stays dense (``events.py``), and gets the conversation's
messages when this module *merges* them: for every membership with log positions above
``participants.streamed_position`` (up to ``left_position`` for a former member), the
user's stream gets those positions as one **span** row ``(user_pk, pos, last_pos,
conversation_id, first_log_position)``, or the user's last span is extended in place when
it is the same conversation's and the log positions follow on. Messages from senders the
member blocked are skipped (a span ends before them and the next starts after them).

A merge runs under the users' row locks, like an append (PostgreSQL: ``FOR NO KEY
UPDATE`` in primary-key order, taken before anything is read, so what is read next is
current; see ``events.py`` on why not ``FOR UPDATE``), so positions stay dense and per
user commit order equals position order. The log itself needs no lock to read: a log
position is committed with the ``conversations.last_position`` that covers it.

Order between conversations in one stream is merge order; within one conversation it is
always the log's, because whatever appends a conversation's own events to a user directly
(a leave, a receipt, a deletion) merges that conversation for the user first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.conversations import set_read_delivered
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import (
    blocks,
    conversations,
    events,
    messages,
    participants,
    user_events,
    users,
)

__all__ = [
    "Merged",
    "ReadMarks",
    "merge_conversation",
    "merge_user",
    "pending_conversations",
    "write_marks",
]


@dataclass(frozen=True, slots=True)
class Merged:
    """Positions a merge added to one user's stream: ``pos..pos+count-1`` are the
    conversation's log positions ``first_log..``."""

    user_pk: int
    pos: int
    conversation_id: str
    first_log: int
    count: int


@dataclass(frozen=True, slots=True)
class ReadMarks:
    """A member's read and delivered watermarks, both at ``position``, written with a merge:
    a send's sender has read and received their own message (``member_fanout.py``). One
    row, whatever the conversation's size: the other members' sort keys follow the
    conversation's ``last_message_at`` and their unread counts its messages."""

    user_pk: int
    position: int


Who = Callable[[ColumnElement[Any]], ColumnElement[bool]]


def _members(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """Every participant of the conversation (prepared once: no list to expand)."""
    return column.in_(
        select(participants.c.user_pk).where(participants.c.conversation_id == bindparam("conv_id"))
    )


def _listed(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return column.in_(bindparam("pks", expanding=True))


def _lock(who: Who) -> Select[Any]:
    return (
        select(users.c.pk)
        .where(who(users.c.pk))
        .order_by(users.c.pk)
        .with_for_update(key_share=True)
    )


def _pending(who: Who) -> Select[Any]:
    """Memberships with log positions not yet merged, in one read: (user, merged up to,
    left at, head, the log's last position, the user's last entry when it is a span of
    this conversation (pos, last_pos, first log position), whether the user blocks anyone).
    """
    tail = user_events.alias("tail")
    newest = (
        select(func.max(user_events.c.pos))
        .where(user_events.c.user_pk == participants.c.user_pk)
        .scalar_subquery()
    )
    blocks_anyone = exists().where(blocks.c.blocker_pk == participants.c.user_pk)
    return (
        select(
            participants.c.user_pk,
            participants.c.streamed_position,
            participants.c.left_position,
            users.c.stream_head,
            conversations.c.last_position,
            tail.c.pos,
            tail.c.last_pos,
            tail.c.first_log_position,
            blocks_anyone,
        )
        .join(users, users.c.pk == participants.c.user_pk)
        .join(conversations, conversations.c.id == participants.c.conversation_id)
        .outerjoin(
            tail,
            and_(
                tail.c.user_pk == participants.c.user_pk,
                tail.c.pos == newest,
                tail.c.conversation_id == participants.c.conversation_id,
                tail.c.last_pos.is_not(None),
            ),
        )
        .where(
            participants.c.conversation_id == bindparam("conv_id"),
            who(participants.c.user_pk),
            participants.c.streamed_position
            < func.coalesce(participants.c.left_position, conversations.c.last_position),
        )
    )


def _blocked() -> Select[Any]:
    """(blocker, log position) of pending messages from senders a member blocked."""
    sender = users.alias("sender")
    return (
        select(blocks.c.blocker_pk, messages.c.position)
        .join(
            sender,
            (sender.c.app_id == blocks.c.app_id) & (sender.c.user_id == blocks.c.blocked_user_id),
        )
        .join(messages, messages.c.sender_pk == sender.c.pk)
        .where(
            _listed(blocks.c.blocker_pk),
            messages.c.conversation_id == bindparam("conv_id"),
            messages.c.position > bindparam("low", type_=BigInteger),
            messages.c.position <= bindparam("last", type_=BigInteger),
        )
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    lock: Select[Any]
    pending: Select[Any]


_ALL = _Statements(_lock(_members), _pending(_members))
_ALL_PREPARED = {name: Prepared(getattr(_ALL, name)) for name in _Statements.__slots__}
_SOME = _Statements(_lock(_listed), _pending(_listed))
_BLOCKED = _blocked()
"""Run only for members who block someone (rare): a plain statement with their list."""

_EXTEND = Prepared(
    update(user_events)
    .where(user_events.c.user_pk == bindparam("u_pk"), user_events.c.pos == bindparam("at"))
    .values(last_pos=bindparam("new_last", type_=BigInteger))
)
_INSERT_SPAN = Prepared(
    insert(user_events).values(
        user_pk=bindparam("u_pk"),
        pos=bindparam("at"),
        event_id=select(events.c.id)
        .where(
            events.c.conversation_id == bindparam("conv_id"),
            events.c.log_position == bindparam("first_log", type_=BigInteger),
        )
        .scalar_subquery(),
        last_pos=bindparam("new_last", type_=BigInteger),
        conversation_id=bindparam("conv_id"),
        first_log_position=bindparam("first_log", type_=BigInteger),
    )
)
_HEAD = Prepared(
    update(users)
    .where(users.c.pk == bindparam("u_pk"))
    .values(stream_head=bindparam("head", type_=BigInteger))
)
_STREAMED = Prepared(
    update(participants)
    .where(
        participants.c.conversation_id == bindparam("conv_id"),
        participants.c.user_pk == bindparam("u_pk"),
    )
    .values(streamed_position=bindparam("merged", type_=BigInteger))
)
_USER_PENDING = Prepared(
    select(participants.c.conversation_id)
    .join(conversations, conversations.c.id == participants.c.conversation_id)
    .where(
        participants.c.user_pk == bindparam("user_pk"),
        participants.c.streamed_position
        < func.coalesce(participants.c.left_position, conversations.c.last_position),
    )
)


async def _rows(
    conn: AsyncConnection, name: str, pks: Sequence[int] | None, params: dict[str, Any]
) -> list[Any]:
    if pks is None:
        return await _ALL_PREPARED[name].all(conn, params)
    statement = getattr(_SOME, name)
    return [tuple(r) for r in await conn.execute(statement, {**params, "pks": list(pks)})]


def _runs(low: int, high: int, skipped: set[int]) -> list[tuple[int, int]]:
    """Contiguous (first, last) log positions in ``low..high`` but the skipped ones."""
    runs: list[tuple[int, int]] = []
    start = low
    for log in sorted(s for s in skipped if low <= s <= high):
        if log > start:
            runs.append((start, log - 1))
        start = log + 1
    if start <= high:
        runs.append((start, high))
    return runs


async def merge_conversation(
    conn: AsyncConnection,
    conversation_id: str,
    user_pks: Sequence[int] | None = None,
    *,
    marks: ReadMarks | None = None,
) -> list[Merged]:
    """Merge ``conversation_id``'s pending log positions into the streams of ``user_pks``
    (all its participants when None: prepared statements, no list); what was added.

    ``marks`` are written too, after the users' row locks like the merge's own
    ``participants`` writes (the lock order: users, then participants). On PostgreSQL
    they join the merge's update of that member's row when it has one (a send's sender
    always does): one statement, one round trip, one row version fewer per send."""
    if user_pks is not None and not user_pks:
        if marks is not None:
            await write_marks(conn, conversation_id, marks)
        return []
    pks = None if user_pks is None else sorted(set(user_pks))
    params: dict[str, Any] = {"conv_id": conversation_id}
    if conn.dialect.name == "postgresql":
        await _rows(conn, "lock", pks, params)
    pending = await _rows(conn, "pending", pks, params)
    if not pending:
        if marks is not None:
            await write_marks(conn, conversation_id, marks)
        return []
    last = int(pending[0][4])
    skipped: dict[int, set[int]] = {}
    blockers = [int(row[0]) for row in pending if row[8]]
    if blockers:
        low = min(int(row[1]) for row in pending)
        found = await conn.execute(_BLOCKED, {**params, "pks": blockers, "low": low, "last": last})
        for blocker, log in found:
            skipped.setdefault(int(blocker), set()).add(int(log))
    return await _write(conn, conversation_id, last, pending, skipped, marks)


async def write_marks(conn: AsyncConnection, conversation_id: str, marks: ReadMarks) -> None:
    """``marks`` by themselves (no merge to join)."""
    await set_read_delivered(
        conn, conversation_id, marks.user_pk,
        read_position=marks.position, delivered_position=marks.position,
    )  # fmt: skip


async def _write(
    conn: AsyncConnection,
    conversation_id: str,
    last: int,
    pending: list[Any],
    skipped: dict[int, set[int]],
    marks: ReadMarks | None,
) -> list[Merged]:
    added: list[Merged] = []
    extend: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    streamed: list[dict[str, Any]] = []
    for user_pk, merged_to, left_at, head, _, tail_pos, tail_last, tail_log, _ in pending:
        user_pk, head = int(user_pk), int(head)
        upto = last if left_at is None else min(last, int(left_at))
        runs = _runs(int(merged_to) + 1, upto, skipped.get(user_pk, set()))
        tail = None if tail_pos is None else (int(tail_pos), int(tail_last), int(tail_log))
        for first, final in runs:
            count = final - first + 1
            if tail is not None and tail[1] == head and tail[2] + tail[1] - tail[0] == first - 1:
                extend.append({"u_pk": user_pk, "at": tail[0], "new_last": head + count})
            else:
                spans.append(
                    {"u_pk": user_pk, "at": head + 1, "new_last": head + count,
                     "conv_id": conversation_id, "first_log": first}
                )  # fmt: skip
            added.append(Merged(user_pk, head + 1, conversation_id, first, count))
            head += count
            tail = None
        heads.append({"u_pk": user_pk, "head": head})
        streamed.append({"conv_id": conversation_id, "u_pk": user_pk, "merged": upto})
    joined = None
    if conn.dialect.name == "postgresql":
        if marks is not None and any(row["u_pk"] == marks.user_pk for row in streamed):
            joined, marks = marks, None
        await _write_arrays(conn, conversation_id, extend, spans, heads, streamed, joined)
    else:
        await _EXTEND.many(conn, extend)
        await _INSERT_SPAN.many(conn, spans)
        await _HEAD.many(conn, heads)
        await _STREAMED.many(conn, streamed)
    if marks is not None:
        await write_marks(conn, conversation_id, marks)
    return added


_PG_WRITE = Prepared(
    text(
        "WITH extended AS ("
        " UPDATE user_events SET last_pos = v.new_last"
        " FROM (SELECT * FROM unnest(CAST(:x_pk AS BIGINT[]), CAST(:x_at AS BIGINT[]),"
        " CAST(:x_last AS BIGINT[])) LIMIT :x_count) AS v(u_pk, at, new_last)"
        " WHERE user_events.user_pk = v.u_pk AND user_events.pos = v.at RETURNING 1),"
        " inserted AS ("
        " INSERT INTO user_events"
        " (user_pk, pos, event_id, last_pos, conversation_id, first_log_position)"
        " SELECT v.u_pk, v.at, (SELECT e.id FROM events e WHERE e.conversation_id = :conv_id"
        " AND e.log_position = v.first_log), v.new_last, :conv_id, v.first_log"
        " FROM (SELECT * FROM unnest(CAST(:s_pk AS BIGINT[]), CAST(:s_at AS BIGINT[]),"
        " CAST(:s_last AS BIGINT[]), CAST(:s_first AS BIGINT[])) LIMIT :s_count)"
        " AS v(u_pk, at, new_last, first_log) RETURNING 1),"
        " members AS (SELECT * FROM unnest(CAST(:h_pk AS BIGINT[]), CAST(:h_head AS BIGINT[]),"
        " CAST(:merged AS BIGINT[])) LIMIT :h_count),"
        " heads AS ("
        " UPDATE users SET stream_head = v.head FROM members AS v(u_pk, head, merged)"
        " WHERE users.pk = v.u_pk RETURNING 1)"
        " UPDATE participants SET streamed_position = v.merged,"
        " read_position = CASE WHEN v.u_pk = CAST(:mark_pk AS BIGINT)"
        " THEN CAST(:mark_pos AS BIGINT) ELSE participants.read_position END,"
        " delivered_position = CASE WHEN v.u_pk = CAST(:mark_pk AS BIGINT)"
        " THEN CAST(:mark_pos AS BIGINT) ELSE participants.delivered_position END"
        " FROM members AS v(u_pk, head, merged)"
        " WHERE participants.conversation_id = :conv_id AND participants.user_pk = v.u_pk"
    )
)
"""PostgreSQL: a merge's writes as one statement over arrays, one round trip whatever the
number of members (a round for 200 connected members once spent most of its CPU binding
800 parameter sets through the driver; then four statements through SQLAlchemy cost a 1:1
send a tenth of its CPU). Its parts touch different rows, so running them as one
statement's data-modifying CTEs, which see one snapshot, changes nothing; the users' rows
were locked before (``lock``), so the lock order stays users, then participants. A
member's read marks (``mark_pk``, ``mark_pos``; NULL for none) are set in the same update
of their ``participants`` row, which one statement may update only once.

Each array goes through ``LIMIT`` its own length (``x_count`` …), which cuts nothing: it
is there for the planner. PostgreSQL estimates ``unnest`` of a known array by its length
and of a parameter as 10 rows, so each execution's custom plan (1 or 2 rows) looked
cheaper than the prepared generic one (10) and this statement, which every send runs, was
planned afresh every time (``pg_prepared_statements``: 0 generic plans and 320 custom,
where every other statement of a send had switched to its generic plan after five). A
``LIMIT`` whose count is a parameter is estimated at a tenth of its input, one row, no
more than any custom plan's, so the generic plan is kept, and estimating one row it looks
up every table by index whatever their size. (A JSON record set, as in
``events._pages``, is estimated at 100 rows planned or not: its generic plan was kept too,
but scanned ``user_events`` whole from 10,000 rows.)"""


async def _write_arrays(
    conn: AsyncConnection,
    conversation_id: str,
    extend: list[dict[str, Any]],
    spans: list[dict[str, Any]],
    heads: list[dict[str, Any]],
    streamed: list[dict[str, Any]],
    marks: ReadMarks | None,
) -> None:
    params = {
        "conv_id": conversation_id,
        "x_pk": [row["u_pk"] for row in extend],
        "x_at": [row["at"] for row in extend],
        "x_last": [row["new_last"] for row in extend],
        "s_pk": [row["u_pk"] for row in spans],
        "s_at": [row["at"] for row in spans],
        "s_last": [row["new_last"] for row in spans],
        "s_first": [row["first_log"] for row in spans],
        "h_pk": [row["u_pk"] for row in heads],
        "h_head": [row["head"] for row in heads],
        "merged": [row["merged"] for row in streamed],
        "x_count": len(extend),
        "s_count": len(spans),
        "h_count": len(heads),
        "mark_pk": marks.user_pk if marks is not None else None,
        "mark_pos": marks.position if marks is not None else None,
    }
    await _PG_WRITE.rowcount(conn, params)


async def pending_conversations(conn: AsyncConnection, user_pk: int) -> list[str]:
    """The conversations with log positions not yet merged into ``user_pk``'s stream."""
    return [str(c) for (c,) in await _USER_PENDING.all(conn, {"user_pk": user_pk})]


async def merge_user(conn: AsyncConnection, user_pk: int) -> list[Merged]:
    """Merge everything pending into one user's stream (before a read of it)."""
    added: list[Merged] = []
    for conversation_id in await pending_conversations(conn, user_pk):
        added += await merge_conversation(conn, conversation_id, [user_pk])
    return added
