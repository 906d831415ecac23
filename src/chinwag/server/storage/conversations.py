"""Conversations and their participants: SQL only, no rules.

A participant row is never deleted when someone leaves: ``left_at``/``left_position`` record
how much history the former participant may still read. ``sort_at`` is written on join,
re-join and leave only, never per message (that was one write per member per message,
issue #13): an active member's sort key for "my conversations by last message" is the later
of it and the conversation's ``last_message_at``, a former member's is ``sort_at`` as frozen
when they left (see :func:`sort_key`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.records import SessionRecord
from chinwag.server.storage.schema import conversations, participants, sessions, users
from chinwag.server.storage.sessions import SESSION_COLUMNS, session_from_row

__all__ = [
    "ConversationRow",
    "MemberRow",
    "active_member_pks",
    "add_members",
    "clear_distinct",
    "delete_member",
    "ensure_users",
    "get_conversation",
    "get_locked_with_session",
    "get_locked_with_sessions",
    "get_member",
    "get_membership",
    "insert_conversation",
    "list_for_user",
    "mark_left",
    "member_user_ids",
    "members",
    "memberships_of",
    "reassign_member",
    "set_marks",
    "set_read_delivered",
    "shares_conversation",
    "sort_key",
    "update_conversation",
    "user_ids_by_pk",
]


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str
    """Internal and server-wide: what other tables refer to. Clients see ``public_id``."""
    app_id: str
    public_id: str
    distinct: bool
    distinct_key: str | None
    metadata: str
    created_by_pk: int | None
    created_at: float
    last_position: int
    last_message_id: str | None
    last_message_at: float | None
    participant_count: int
    deleted_at: float | None


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One user's membership, including their private watermarks."""

    conversation_id: str
    user_pk: int
    joined_at: float
    joined_position: int
    left_at: float | None
    left_position: int | None
    read_position: int
    delivered_position: int
    hidden_position: int
    sort_at: float
    left_snapshot: str | None = None
    """JSON ``{"metadata", "participants"}`` as they were when the member left: what a
    former participant keeps seeing of the conversation."""
    streamed_position: int = 0
    """How far the conversation's log is merged into the member's stream (``spans.py``)."""

    @property
    def active(self) -> bool:
        return self.left_at is None


_CONV_COLUMNS = [conversations.c[f] for f in ConversationRow.__slots__]
_MEMBER_COLUMNS = [participants.c[f] for f in MemberRow.__slots__]
_N_CONV = len(_CONV_COLUMNS)


def _conversation(row: Sequence[Any]) -> ConversationRow:
    """From a row in ``ConversationRow`` field order (SQLite gives booleans as 0/1)."""
    id_, app_id, public, distinct, key, meta, creator, created, last, last_id, last_at = row[:11]
    count, deleted = row[11:]
    return ConversationRow(
        id=id_,
        app_id=app_id,
        public_id=public,
        distinct=bool(distinct),
        distinct_key=key,
        metadata=meta,
        created_by_pk=creator,
        created_at=float(created),
        last_position=int(last),
        last_message_id=last_id,
        last_message_at=last_at,
        participant_count=int(count),
        deleted_at=deleted,
    )


def _member(row: Sequence[Any]) -> MemberRow:
    """From a row in ``MemberRow`` field order."""
    conv_id, user_pk, joined_at, joined_pos, left_at, left_pos, read, delivered, hidden, sort = row[
        :10
    ]
    return MemberRow(
        conversation_id=conv_id,
        user_pk=int(user_pk),
        joined_at=float(joined_at),
        joined_position=int(joined_pos),
        left_at=left_at,
        left_position=left_pos,
        read_position=int(read),
        delivered_position=int(delivered),
        hidden_position=int(hidden),
        sort_at=float(sort),
        left_snapshot=row[10],
        streamed_position=int(row[11]),
    )


_LIVE_BY_ID = (
    conversations.c.app_id == bindparam("app_id"),
    conversations.c.public_id == bindparam("conversation_id"),
    conversations.c.deleted_at.is_(None),
)
_GET_CONVERSATION = Prepared(select(*_CONV_COLUMNS).where(*_LIVE_BY_ID))
_GET_CONVERSATION_LOCKED = Prepared(
    _GET_CONVERSATION.statement,
    postgresql=select(*_CONV_COLUMNS).where(*_LIVE_BY_ID).with_for_update(key_share=True),
)
_GET_CONVERSATION_LOCKED_WITH_SESSION = Prepared(
    select(*_CONV_COLUMNS, *SESSION_COLUMNS)
    .select_from(conversations.outerjoin(sessions, sessions.c.id == bindparam("session_id")))
    .where(*_LIVE_BY_ID)
    .with_for_update(key_share=True, of=conversations)
)
_GET_MEMBER = Prepared(
    select(*_MEMBER_COLUMNS).where(
        participants.c.conversation_id == bindparam("conversation_id"),
        participants.c.user_pk == bindparam("user_pk"),
    )
)
_GET_MEMBERSHIP = Prepared(
    select(*_CONV_COLUMNS, *_MEMBER_COLUMNS)
    .select_from(
        conversations.join(
            participants,
            and_(
                participants.c.conversation_id == conversations.c.id,
                participants.c.user_pk == bindparam("user_pk"),
            ),
        )
    )
    .where(*_LIVE_BY_ID)
)
_ACTIVE_MEMBER_PKS = Prepared(
    select(participants.c.user_pk).where(
        participants.c.conversation_id == bindparam("conversation_id"),
        participants.c.left_at.is_(None),
    )
)
_MEMBER_USER_IDS = Prepared(
    select(users.c.pk, users.c.user_id)
    .join(participants, participants.c.user_pk == users.c.pk)
    .where(
        participants.c.conversation_id == bindparam("conversation_id"),
        participants.c.left_at.is_(None),
    )
    .order_by(participants.c.joined_at, participants.c.user_pk)
)
_SET_READ_DELIVERED = Prepared(
    update(participants)
    .where(
        participants.c.conversation_id == bindparam("conv_id"),
        participants.c.user_pk == bindparam("member_pk"),
    )
    .values(
        read_position=bindparam("read", type_=BigInteger),
        delivered_position=bindparam("delivered", type_=BigInteger),
    )
)


def sort_key() -> Any:
    """A membership's "last message" sort value: see the module docstring."""
    latest = conversations.c.last_message_at
    return case(
        (
            participants.c.left_at.is_(None) & (latest > participants.c.sort_at),
            latest,
        ),
        else_=participants.c.sort_at,
    )


_FREEZE_SORT = (
    select(conversations.c.last_message_at)
    .where(conversations.c.id == participants.c.conversation_id)
    .scalar_subquery()
)


def _new_user(insert_into: Any) -> Any:
    return (
        insert_into(users)
        .values(
            app_id=bindparam("app_id"),
            user_id=bindparam("user_id"),
            anonymous=False,
            stream_head=0,
            created_at=bindparam("now", type_=Float),
            updated_at=bindparam("now", type_=Float),
        )
        .on_conflict_do_nothing()
    )


_INSERT_NEW_USER = Prepared(_new_user(sqlite_insert), postgresql=_new_user(pg_insert))
_LAST_POSITION = (
    select(conversations.c.last_position)
    .where(conversations.c.id == bindparam("conv_id"))
    .scalar_subquery()
)
"""A (re-)joining member's stream starts merged up to now (``storage/spans.py``)."""
_INSERT_MEMBER = Prepared(
    insert(participants).values(
        conversation_id=bindparam("conv_id"),
        user_pk=bindparam("member_pk", type_=BigInteger),
        joined_at=bindparam("now", type_=Float),
        joined_position=bindparam("position", type_=BigInteger),
        sort_at=bindparam("now", type_=Float),
        streamed_position=_LAST_POSITION,
    )
)


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


async def ensure_users(
    conn: AsyncConnection, app_id: str, user_ids: Sequence[str], now: float
) -> dict[str, int]:
    """user_id → pk, creating users the app has not mentioned before (no profile).

    ON CONFLICT DO NOTHING in sorted order: concurrent creators of the same new user neither
    fail nor deadlock; every one of them then reads the single committed row.
    """
    wanted = sorted(set(user_ids))
    # One prepared executemany: a statement per user through SQLAlchemy held the event
    # loop for seconds when a conversation named 999 new users (tests/abuse).
    await _INSERT_NEW_USER.many(
        conn, [{"app_id": app_id, "user_id": u, "now": now} for u in wanted]
    )
    rows = await conn.execute(
        select(users.c.user_id, users.c.pk).where(
            users.c.app_id == app_id, users.c.user_id.in_(wanted)
        )
    )
    return {r.user_id: int(r.pk) for r in rows}


async def user_ids_by_pk(conn: AsyncConnection, pks: Sequence[int]) -> dict[int, str]:
    if not pks:
        return {}
    if len(pks) == 1:  # a conversation's creator, once per conversation listed: prepared
        row = await _USER_ID_BY_PK.first(conn, {"pk": pks[0]})
        return {int(pks[0]): row[0]} if row else {}
    rows = await conn.execute(select(users.c.pk, users.c.user_id).where(users.c.pk.in_(pks)))
    return {int(r.pk): r.user_id for r in rows}


_USER_ID_BY_PK = Prepared(select(users.c.user_id).where(users.c.pk == bindparam("pk")))


async def insert_conversation(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """True when inserted; False when the app already has the public id or the distinct key."""
    result = await conn.execute(
        _insert(conn)(conversations).values(**values).on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)


async def get_locked_with_session(
    conn: AsyncConnection, app_id: str, conversation_id: str, session_id: str
) -> tuple[ConversationRow, SessionRecord | None] | None:
    """PostgreSQL: a live conversation by public id, its row lock taken, with the caller's
    session as the same statement reads it (None: no such session); None when there is no
    such conversation. A send's session check and its lock in one round trip."""
    row = await _GET_CONVERSATION_LOCKED_WITH_SESSION.first(
        conn, {"app_id": app_id, "conversation_id": conversation_id, "session_id": session_id}
    )
    return _locked_with_session(row) if row is not None else None


def _locked_with_session(row: Sequence[Any]) -> tuple[ConversationRow, SessionRecord | None]:
    """A row of ``_GET_CONVERSATION_LOCKED_WITH_SESSION``: the conversation, then the
    session's columns (all NULL when there is no such session)."""
    width = len(_CONV_COLUMNS)
    session = session_from_row(row[width:]) if row[width] is not None else None
    return _conversation(row[:width]), session


async def get_locked_with_sessions(
    conn: AsyncConnection, keys: Sequence[Mapping[str, str]]
) -> list[tuple[ConversationRow, SessionRecord | None]] | None:
    """:func:`get_locked_with_session` for each of ``keys`` (``app_id``,
    ``conversation_id``, ``session_id``), in order, as a batch of sends takes them: the
    first alone (it begins the transaction), the rest in one round trip
    (``Prepared.each``). None when any conversation is missing: the sends then run one by
    one, each told why."""
    if not keys:
        return []
    first = await _GET_CONVERSATION_LOCKED_WITH_SESSION.first(conn, keys[0])
    if first is None:
        return None
    rows = [first, *await _GET_CONVERSATION_LOCKED_WITH_SESSION.each(conn, keys[1:])]
    if len(rows) != len(keys):  # each set returns one row or none: all are there, in order
        return None
    return [_locked_with_session(row) for row in rows]


async def get_conversation(
    conn: AsyncConnection,
    app_id: str,
    *,
    conversation_id: str | None = None,
    distinct_key: str | None = None,
    key: str | None = None,
    lock: bool = False,
) -> ConversationRow | None:
    """A live (not deleted-for-all) conversation by public id, distinct key or internal
    ``key``; ``lock`` takes its row lock in PostgreSQL."""
    if conversation_id is not None and distinct_key is None and key is None:
        found = _GET_CONVERSATION_LOCKED if lock else _GET_CONVERSATION
        params = {"app_id": app_id, "conversation_id": conversation_id}
        first = await found.first(conn, params)
        return _conversation(first) if first else None
    query = select(*_CONV_COLUMNS).where(
        conversations.c.app_id == app_id, conversations.c.deleted_at.is_(None)
    )
    if conversation_id is not None:
        query = query.where(conversations.c.public_id == conversation_id)
    if key is not None:
        query = query.where(conversations.c.id == key)
    if distinct_key is not None:
        query = query.where(conversations.c.distinct_key == distinct_key)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)  # NO KEY UPDATE: see storage/events.py
    row = (await conn.execute(query)).first()
    return _conversation(row) if row else None


async def get_membership(
    conn: AsyncConnection, app_id: str, conversation_id: str, user_pk: int
) -> tuple[ConversationRow, MemberRow] | None:
    """A live conversation (by public id) and one user's participant row (active or
    former), in one read.

    Not for locking reads on PostgreSQL: after waiting for a conversation's row lock, a
    joined ``FOR UPDATE`` would re-check the conversation but hand back the participant
    row as it was before the wait (read-committed re-evaluation), so locking callers read
    the two one after the other (see ``handlers.conversations.load``).
    """
    params = {"app_id": app_id, "conversation_id": conversation_id, "user_pk": user_pk}
    row = await _GET_MEMBERSHIP.first(conn, params)
    if row is None:
        return None
    return _conversation(row[:_N_CONV]), _member(row[_N_CONV:])


async def update_conversation(conn: AsyncConnection, conversation_id: str, **values: Any) -> None:
    await conn.execute(
        update(conversations).where(conversations.c.id == conversation_id).values(**values)
    )


async def clear_distinct(conn: AsyncConnection, conversation_id: str) -> None:
    """A conversation whose participants changed is no longer the distinct one for any set."""
    await update_conversation(conn, conversation_id, distinct=False, distinct_key=None)


async def get_member(conn: AsyncConnection, conversation_id: str, user_pk: int) -> MemberRow | None:
    row = await _GET_MEMBER.first(conn, {"conversation_id": conversation_id, "user_pk": user_pk})
    return _member(row) if row else None


async def members(conn: AsyncConnection, conversation_id: str) -> list[MemberRow]:
    """Every membership row, active and former, in joining order."""
    rows = await conn.execute(
        select(participants)
        .where(participants.c.conversation_id == conversation_id)
        .order_by(participants.c.joined_at, participants.c.user_pk)
    )
    return [MemberRow(**r._mapping) for r in rows]


async def member_user_ids(conn: AsyncConnection, conversation_id: str) -> list[tuple[int, str]]:
    """(pk, user_id) of the active participants, in joining order."""
    rows = await _MEMBER_USER_IDS.all(conn, {"conversation_id": conversation_id})
    return [(int(pk), user_id) for pk, user_id in rows]


async def active_member_pks(conn: AsyncConnection, conversation_id: str) -> list[int]:
    """The active participants' pks, in no particular order (an event's readers)."""
    rows = await _ACTIVE_MEMBER_PKS.all(conn, {"conversation_id": conversation_id})
    return [int(pk) for (pk,) in rows]


async def add_members(
    conn: AsyncConnection,
    conversation_id: str,
    user_pks: Sequence[int],
    *,
    now: float,
    position: int,
) -> list[int]:
    """Add (or re-activate) members; returns the pks that were not active before."""
    existing = {m.user_pk: m for m in await members(conn, conversation_id)}
    new = [pk for pk in dict.fromkeys(user_pks) if pk not in existing]
    back = [pk for pk in dict.fromkeys(user_pks) if pk in existing and not existing[pk].active]
    # Batched (executemany): a statement per member held the event loop for a second or
    # more when a conversation was created with 999 participants.
    await _INSERT_MEMBER.many(
        conn,
        [{"conv_id": conversation_id, "member_pk": pk, "now": now, "position": position}
         for pk in new],
    )  # fmt: skip
    if back:
        await conn.execute(
            update(participants)
            .where(
                participants.c.conversation_id == bindparam("conv_id"),
                participants.c.user_pk == bindparam("member_pk"),
            )
            .values(
                left_at=None,
                left_position=None,
                left_snapshot=None,
                sort_at=now,
                streamed_position=_LAST_POSITION,
            ),
            [{"conv_id": conversation_id, "member_pk": pk} for pk in back],
        )
    changed = set(new) | set(back)
    added = [pk for pk in dict.fromkeys(user_pks) if pk in changed]
    await _recount(conn, conversation_id)
    return added


async def mark_left(
    conn: AsyncConnection,
    conversation_id: str,
    user_pk: int,
    *,
    now: float,
    position: int,
    snapshot: str,
) -> None:
    """``snapshot``: see ``MemberRow.left_snapshot``."""
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.user_pk == user_pk)
        .values(
            left_at=now,
            left_position=position,
            left_snapshot=snapshot,
            # Freeze the sort key where it stands (sort_key): later messages don't move it.
            sort_at=case(
                (participants.c.sort_at < _FREEZE_SORT, _FREEZE_SORT),
                else_=participants.c.sort_at,
            ),
        )
    )
    await _recount(conn, conversation_id)


async def _recount(conn: AsyncConnection, conversation_id: str) -> None:
    count = (
        select(func.count())
        .select_from(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None))
        .scalar_subquery()
    )
    await update_conversation(conn, conversation_id, participant_count=count)


async def set_marks(
    conn: AsyncConnection, conversation_id: str, user_pk: int, **values: int
) -> None:
    """Write a member's watermarks (read/delivered/hidden positions)."""
    if values.keys() == {"read_position", "delivered_position"}:
        await set_read_delivered(conn, conversation_id, user_pk, **values)
        return
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.user_pk == user_pk)
        .values(**values)
    )


async def set_read_delivered(
    conn: AsyncConnection,
    conversation_id: str,
    user_pk: int,
    *,
    read_position: int,
    delivered_position: int,
) -> None:
    """Write one member's read and delivered watermarks (a receipt)."""
    params = {
        "conv_id": conversation_id,
        "member_pk": user_pk,
        "read": read_position,
        "delivered": delivered_position,
    }
    await _SET_READ_DELIVERED.rowcount(conn, params)


async def list_for_user(
    conn: AsyncConnection,
    app_id: str,
    user_pk: int,
    *,
    sort: str,
    limit: int,
    after: tuple[float, str] | None,
) -> list[tuple[ConversationRow, MemberRow, float]]:
    """One page, newest first, keyed by (sort value, id) so paging is stable under ties.

    Conversations whose whole history was deleted for the user's devices are skipped.
    """
    key = sort_key() if sort == "last_message" else conversations.c.created_at
    query = (
        select(conversations, participants, key.label("sort_value"))
        .join(participants, participants.c.conversation_id == conversations.c.id)
        .where(
            participants.c.user_pk == user_pk,
            conversations.c.app_id == app_id,
            conversations.c.deleted_at.is_(None),
            or_(
                participants.c.hidden_position == 0,
                participants.c.hidden_position < conversations.c.last_position,
            ),
        )
        .order_by(key.desc(), conversations.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        value, last_id = after
        query = query.where(or_(key < value, and_(key == value, conversations.c.id < last_id)))
    rows = (await conn.execute(query)).all()
    conv_cols = [c.name for c in conversations.c]
    member_cols = [c.name for c in participants.c]
    page = []
    for row in rows:
        mapping = row._mapping
        conv = ConversationRow(**{c: mapping[conversations.c[c]] for c in conv_cols})
        member = MemberRow(**{c: mapping[participants.c[c]] for c in member_cols})
        page.append((conv, member, float(mapping["sort_value"])))
    return page


async def shares_conversation(conn: AsyncConnection, user_pk: int, other_pk: int) -> bool:
    """Whether the two users are both participants, now, of one live conversation."""
    mine = participants.alias("mine")
    theirs = participants.alias("theirs")
    row = (
        await conn.execute(
            select(mine.c.conversation_id)
            .join(theirs, theirs.c.conversation_id == mine.c.conversation_id)
            .join(conversations, conversations.c.id == mine.c.conversation_id)
            .where(
                mine.c.user_pk == user_pk,
                theirs.c.user_pk == other_pk,
                mine.c.left_at.is_(None),
                theirs.c.left_at.is_(None),
                conversations.c.deleted_at.is_(None),
            )
            .limit(1)
        )
    ).first()
    return row is not None


async def memberships_of(conn: AsyncConnection, user_pk: int) -> list[MemberRow]:
    """Every membership row of one user (active and former), by conversation id."""
    rows = await conn.execute(
        select(participants)
        .where(participants.c.user_pk == user_pk)
        .order_by(participants.c.conversation_id)
    )
    return [MemberRow(**r._mapping) for r in rows]


async def reassign_member(
    conn: AsyncConnection, conversation_id: str, from_pk: int, to_pk: int
) -> None:
    """Hand a membership row, watermarks and all, to another user."""
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.user_pk == from_pk)
        .values(user_pk=to_pk)
    )


async def delete_member(conn: AsyncConnection, conversation_id: str, user_pk: int) -> None:
    await conn.execute(
        delete(participants).where(
            participants.c.conversation_id == conversation_id, participants.c.user_pk == user_pk
        )
    )
    await _recount(conn, conversation_id)
