"""Conversations and their participants: SQL only, no rules.

A participant row is never deleted when someone leaves: ``left_at``/``left_position`` record
how much history the former participant may still read. ``sort_at`` is copied onto every
active participant row when a message arrives, so "my conversations by last message" is one
indexed range scan per user instead of a join over messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.schema import conversations, participants, users

__all__ = [
    "ConversationRow",
    "MemberRow",
    "add_members",
    "clear_distinct",
    "delete_member",
    "ensure_users",
    "get_conversation",
    "get_member",
    "insert_conversation",
    "list_for_user",
    "mark_left",
    "member_user_ids",
    "members",
    "memberships_of",
    "reassign_member",
    "set_marks",
    "shares_conversation",
    "touch_sort",
    "update_conversation",
    "user_ids_by_pk",
]


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str
    app_id: str
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

    @property
    def active(self) -> bool:
        return self.left_at is None


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
    for user_id in wanted:
        await conn.execute(
            _insert(conn)(users)
            .values(
                app_id=app_id,
                user_id=user_id,
                anonymous=False,
                stream_head=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
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
    rows = await conn.execute(select(users.c.pk, users.c.user_id).where(users.c.pk.in_(pks)))
    return {int(r.pk): r.user_id for r in rows}


async def insert_conversation(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """True when inserted; False when the id or the distinct key already exists."""
    result = await conn.execute(
        _insert(conn)(conversations).values(**values).on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)


async def get_conversation(
    conn: AsyncConnection,
    app_id: str,
    *,
    conversation_id: str | None = None,
    distinct_key: str | None = None,
    lock: bool = False,
) -> ConversationRow | None:
    """A live (not deleted-for-all) conversation; ``lock`` takes its row lock in PostgreSQL."""
    query = select(conversations).where(
        conversations.c.app_id == app_id, conversations.c.deleted_at.is_(None)
    )
    if conversation_id is not None:
        query = query.where(conversations.c.id == conversation_id)
    if distinct_key is not None:
        query = query.where(conversations.c.distinct_key == distinct_key)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return ConversationRow(**row._mapping) if row else None


async def update_conversation(conn: AsyncConnection, conversation_id: str, **values: Any) -> None:
    await conn.execute(
        update(conversations).where(conversations.c.id == conversation_id).values(**values)
    )


async def clear_distinct(conn: AsyncConnection, conversation_id: str) -> None:
    """A conversation whose participants changed is no longer the distinct one for any set."""
    await update_conversation(conn, conversation_id, distinct=False, distinct_key=None)


async def get_member(conn: AsyncConnection, conversation_id: str, user_pk: int) -> MemberRow | None:
    row = (
        await conn.execute(
            select(participants).where(
                participants.c.conversation_id == conversation_id,
                participants.c.user_pk == user_pk,
            )
        )
    ).first()
    return MemberRow(**row._mapping) if row else None


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
    rows = await conn.execute(
        select(users.c.pk, users.c.user_id)
        .join(participants, participants.c.user_pk == users.c.pk)
        .where(participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None))
        .order_by(participants.c.joined_at, participants.c.user_pk)
    )
    return [(int(r.pk), r.user_id) for r in rows]


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
    added = []
    for pk in user_pks:
        member = existing.get(pk)
        if member is not None and member.active:
            continue
        if member is None:
            await conn.execute(
                insert(participants).values(
                    conversation_id=conversation_id,
                    user_pk=pk,
                    joined_at=now,
                    joined_position=position,
                    sort_at=now,
                )
            )
        else:
            await conn.execute(
                update(participants)
                .where(
                    participants.c.conversation_id == conversation_id, participants.c.user_pk == pk
                )
                .values(left_at=None, left_position=None, sort_at=now)
            )
        added.append(pk)
    await _recount(conn, conversation_id)
    return added


async def mark_left(
    conn: AsyncConnection, conversation_id: str, user_pk: int, *, now: float, position: int
) -> None:
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.user_pk == user_pk)
        .values(left_at=now, left_position=position)
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
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.user_pk == user_pk)
        .values(**values)
    )


async def touch_sort(conn: AsyncConnection, conversation_id: str, at: float) -> None:
    await conn.execute(
        update(participants)
        .where(participants.c.conversation_id == conversation_id, participants.c.left_at.is_(None))
        .values(sort_at=at)
    )


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
    key = participants.c.sort_at if sort == "last_message" else conversations.c.created_at
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
    """Whether the two users are or were participants of one live conversation."""
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
