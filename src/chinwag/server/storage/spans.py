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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
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
    "merge_conversations",
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


def _everyone(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """No filter on the user (the conversations filter already)."""
    return column.is_not(None)


def _listed(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return column.in_(bindparam("pks", expanding=True))


def _in_conversations(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """In any of the conversations ``convs`` (an array of ``conv_count`` ids), through
    ``LIMIT`` its own length for the planner, as in :data:`_PG_WRITE`."""
    ids = (
        func.unnest(bindparam("convs", type_=ARRAY(String)))
        .table_valued("id")
        .render_derived(name="c")
    )
    return column.in_(
        select(ids.c.id).select_from(ids).limit(bindparam("conv_count", type_=Integer))
    )


def _members_of_conversations(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """Every participant of the conversations ``convs``."""
    return column.in_(
        select(participants.c.user_pk).where(_in_conversations(participants.c.conversation_id))
    )


def _lock(who: Who) -> Select[Any]:
    return (
        select(users.c.pk)
        .where(who(users.c.pk))
        .order_by(users.c.pk)
        .with_for_update(key_share=True)
    )


def _pending(who: Who, *, many: bool = False) -> Select[Any]:
    """Memberships with log positions not yet merged, in one read: (user, merged up to,
    left at, head, the log's last position, the user's last entry when it is a span of
    this conversation (pos, last_pos, first log position), whether the user blocks anyone).
    ``many``: of every member of the conversations ``convs``, each row ending with its
    conversation's id, by conversation then user."""
    tail = user_events.alias("tail")
    newest = (
        select(func.max(user_events.c.pos))
        .where(user_events.c.user_pk == participants.c.user_pk)
        .scalar_subquery()
    )
    blocks_anyone = exists().where(blocks.c.blocker_pk == participants.c.user_pk)
    which = (
        _in_conversations(participants.c.conversation_id)
        if many
        else participants.c.conversation_id == bindparam("conv_id")
    )
    query = (
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
            which,
            who(participants.c.user_pk),
            participants.c.streamed_position
            < func.coalesce(participants.c.left_position, conversations.c.last_position),
        )
    )
    if many:
        query = query.add_columns(participants.c.conversation_id).order_by(
            participants.c.conversation_id, participants.c.user_pk
        )
    return query


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
_MANY = _Statements(_lock(_members_of_conversations), _pending(_everyone, many=True))
_MANY_PREPARED = {name: Prepared(getattr(_MANY, name)) for name in _Statements.__slots__}
"""PostgreSQL: the lock and the pending read of a batch's merges, for every member of
every conversation in it (:func:`merge_conversations`)."""
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
    plan = _Plan()
    if pending:
        skipped = await _skipped(conn, conversation_id, pending)
        plan.add(conversation_id, pending, skipped)
    await _write(conn, plan, [(conversation_id, marks)])
    return plan.added.get(conversation_id, [])


async def merge_conversations(
    conn: AsyncConnection, merges: Sequence[tuple[str, ReadMarks | None]]
) -> dict[str, list[Merged]]:
    """PostgreSQL: :func:`merge_conversation` for every member of several conversations at
    once, in three statements whatever their number (the users' locks, the pending read,
    the writes), where one by one each took three: a batch of sends to small conversations
    merges them together (``member_fanout.MergesAtCommit``). ``merges``: (conversation,
    marks to write with it, or None); a conversation may come more than once. What each
    conversation's merge added.

    The users of all the conversations are locked together, in primary-key order, before
    anything is read, as for one conversation; a user in several of them gets each
    conversation's positions in the order the conversations were first named."""
    order = list(dict.fromkeys(conversation_id for conversation_id, _ in merges))
    params: dict[str, Any] = {"convs": order, "conv_count": len(order)}
    await _MANY_PREPARED["lock"].all(conn, params)
    found = await _MANY_PREPARED["pending"].all(conn, params)
    by_conversation: dict[str, list[Any]] = {}
    for row in found:
        by_conversation.setdefault(str(row[9]), []).append(row)
    plan = _Plan()
    for conversation_id in order:
        pending = by_conversation.get(conversation_id)
        if pending:
            skipped = await _skipped(conn, conversation_id, pending)
            plan.add(conversation_id, pending, skipped)
    await _write(conn, plan, merges)
    return plan.added


async def _skipped(
    conn: AsyncConnection, conversation_id: str, pending: list[Any]
) -> dict[int, set[int]]:
    """Per member who blocks someone (rare), the pending log positions of those they block."""
    skipped: dict[int, set[int]] = {}
    blockers = [int(row[0]) for row in pending if row[8]]
    if blockers:
        low = min(int(row[1]) for row in pending)
        params = {"conv_id": conversation_id, "pks": blockers, "low": low, "last": pending[0][4]}
        for blocker, log in await conn.execute(_BLOCKED, params):
            skipped.setdefault(int(blocker), set()).add(int(log))
    return skipped


async def write_marks(conn: AsyncConnection, conversation_id: str, marks: ReadMarks) -> None:
    """``marks`` by themselves (no merge to join)."""
    await set_read_delivered(
        conn, conversation_id, marks.user_pk,
        read_position=marks.position, delivered_position=marks.position,
    )  # fmt: skip


@dataclass(slots=True)
class _Plan:
    """The rows one or more conversations' merges write."""

    extend: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    heads: dict[int, int] = field(default_factory=dict)
    """Each user's stream head after the merges (a user may be in several)."""
    streamed: list[dict[str, Any]] = field(default_factory=list)
    added: dict[str, list[Merged]] = field(default_factory=dict)

    def add(self, conversation_id: str, pending: list[Any], skipped: dict[int, set[int]]) -> None:
        """Plan ``conversation_id``'s merge from its ``pending`` rows (``_pending``), after
        the conversations planned before it."""
        last = int(pending[0][4])
        added = self.added.setdefault(conversation_id, [])
        for row in pending:
            user_pk, merged_to, left_at, head_read, _, tail_pos, tail_last, tail_log = row[:8]
            user_pk = int(user_pk)
            head = self.heads.get(user_pk, int(head_read))
            upto = last if left_at is None else min(last, int(left_at))
            runs = _runs(int(merged_to) + 1, upto, skipped.get(user_pk, set()))
            # The user's last entry, when it is this conversation's: it still is only if no
            # merge before this one added to their stream (then it ends at the head).
            tail = None if tail_pos is None else (int(tail_pos), int(tail_last), int(tail_log))
            for first, final in runs:
                count = final - first + 1
                if (
                    tail is not None
                    and tail[1] == head
                    and tail[2] + tail[1] - tail[0] == first - 1
                ):
                    self.extend.append({"u_pk": user_pk, "at": tail[0], "new_last": head + count})
                else:
                    self.spans.append(
                        {"u_pk": user_pk, "at": head + 1, "new_last": head + count,
                         "conv_id": conversation_id, "first_log": first}
                    )  # fmt: skip
                added.append(Merged(user_pk, head + 1, conversation_id, first, count))
                head += count
                tail = None
            self.heads[user_pk] = head
            self.streamed.append({"conv_id": conversation_id, "u_pk": user_pk, "merged": upto})


async def _write(
    conn: AsyncConnection, plan: _Plan, marks: Sequence[tuple[str, ReadMarks | None]]
) -> None:
    """Write ``plan`` and the members' ``marks`` (conversation, marks or None): on
    PostgreSQL the marks of a member the plan updates join that update."""
    latest: dict[tuple[str, int], int] = {}
    for conversation_id, mark in marks:
        if mark is not None:
            key = (conversation_id, mark.user_pk)
            latest[key] = max(latest.get(key, mark.position), mark.position)
    if conn.dialect.name == "postgresql":
        if plan.streamed:
            await _write_in_one(conn, plan, latest)
        for row in plan.streamed:
            latest.pop((row["conv_id"], row["u_pk"]), None)  # written with the merge
    else:
        heads = [{"u_pk": pk, "head": head} for pk, head in plan.heads.items()]
        for statement, rows in (
            (_EXTEND, plan.extend),
            (_INSERT_SPAN, plan.spans),
            (_HEAD, heads),
            (_STREAMED, plan.streamed),
        ):
            if rows:
                await statement.many(conn, rows)
    for (conversation_id, user_pk), position in latest.items():
        await write_marks(conn, conversation_id, ReadMarks(user_pk, position))


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
        " SELECT v.u_pk, v.at, (SELECT e.id FROM events e WHERE e.conversation_id = v.conv"
        " AND e.log_position = v.first_log), v.new_last, v.conv, v.first_log"
        " FROM (SELECT * FROM unnest(CAST(:s_pk AS BIGINT[]), CAST(:s_at AS BIGINT[]),"
        " CAST(:s_last AS BIGINT[]), CAST(:s_first AS BIGINT[]), CAST(:s_conv AS VARCHAR[]))"
        " LIMIT :s_count) AS v(u_pk, at, new_last, first_log, conv) RETURNING 1),"
        " heads AS ("
        " UPDATE users SET stream_head = v.head"
        " FROM (SELECT * FROM unnest(CAST(:h_pk AS BIGINT[]), CAST(:h_head AS BIGINT[]))"
        " LIMIT :h_count) AS v(u_pk, head)"
        " WHERE users.pk = v.u_pk RETURNING 1)"
        " UPDATE participants SET streamed_position = v.merged,"
        " read_position = coalesce(v.mark, participants.read_position),"
        " delivered_position = coalesce(v.mark, participants.delivered_position)"
        " FROM (SELECT * FROM unnest(CAST(:m_pk AS BIGINT[]), CAST(:m_conv AS VARCHAR[]),"
        " CAST(:m_merged AS BIGINT[]), CAST(:m_mark AS BIGINT[])) LIMIT :m_count)"
        " AS v(u_pk, conv, merged, mark)"
        " WHERE participants.conversation_id = v.conv AND participants.user_pk = v.u_pk"
    )
)
"""PostgreSQL: the writes of one or more conversations' merges as one statement over
arrays, one round trip whatever the number of members (a round for 200 connected members
once spent most of its CPU binding 800 parameter sets through the driver; then four
statements through SQLAlchemy cost a 1:1 send a tenth of its CPU). Its parts touch
different rows, so running them as one statement's data-modifying CTEs, which see one
snapshot, changes nothing; the users' rows were locked before (``lock``), so the lock
order stays users, then participants. A member's read marks (``m_mark``; NULL for none)
are set in the same update of their ``participants`` row, which one statement may update
only once.

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


async def _write_in_one(
    conn: AsyncConnection, plan: _Plan, marks: dict[tuple[str, int], int]
) -> None:
    params = {
        "x_pk": [row["u_pk"] for row in plan.extend],
        "x_at": [row["at"] for row in plan.extend],
        "x_last": [row["new_last"] for row in plan.extend],
        "x_count": len(plan.extend),
        "s_pk": [row["u_pk"] for row in plan.spans],
        "s_at": [row["at"] for row in plan.spans],
        "s_last": [row["new_last"] for row in plan.spans],
        "s_first": [row["first_log"] for row in plan.spans],
        "s_conv": [row["conv_id"] for row in plan.spans],
        "s_count": len(plan.spans),
        "h_pk": list(plan.heads),
        "h_head": list(plan.heads.values()),
        "h_count": len(plan.heads),
        "m_pk": [row["u_pk"] for row in plan.streamed],
        "m_conv": [row["conv_id"] for row in plan.streamed],
        "m_merged": [row["merged"] for row in plan.streamed],
        "m_mark": [marks.get((row["conv_id"], row["u_pk"])) for row in plan.streamed],
        "m_count": len(plan.streamed),
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
