"""Blocks: who blocked which user id, and the reads that hide a blocked user. SQL only.

The blocked side is the app's user id (a string), not a ``users`` row: blocking an id
creates nobody and reads nobody, so it cannot be used to learn whether a user exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage import engines
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import blocks, messages, users

__all__ = [
    "add_block",
    "any_block",
    "blocked_sender_filter",
    "blockers_of",
    "count_blocks_locked",
    "has_blocked",
    "list_blocked",
    "remove_block",
]

_BLOCKERS_OF = Prepared(
    select(blocks.c.blocker_pk).where(
        blocks.c.app_id == bindparam("app_id"),
        blocks.c.blocked_user_id == bindparam("user_id"),
    )
)


async def add_block(
    conn: AsyncConnection, *, app_id: str, blocker_pk: int, blocked_user_id: str, now: float
) -> bool:
    """True when the block is new (blocking twice is not an error)."""
    result = await conn.execute(
        engines.insert(conn, blocks)
        .values(
            app_id=app_id, blocker_pk=blocker_pk, blocked_user_id=blocked_user_id, created_at=now
        )
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)


async def count_blocks_locked(conn: AsyncConnection, blocker_pk: int) -> int:
    """How many users ``blocker_pk`` blocks, counted under the blocker's row lock, so
    concurrent blocks by one user are counted one at a time (the per-user cap)."""
    await conn.execute(engines.locked(conn, select(users.c.pk).where(users.c.pk == blocker_pk)))
    found = select(func.count()).select_from(blocks).where(blocks.c.blocker_pk == blocker_pk)
    return int(await conn.scalar(found) or 0)


async def remove_block(conn: AsyncConnection, *, blocker_pk: int, blocked_user_id: str) -> bool:
    result = await conn.execute(
        delete(blocks).where(
            blocks.c.blocker_pk == blocker_pk, blocks.c.blocked_user_id == blocked_user_id
        )
    )
    return bool(result.rowcount)


async def list_blocked(conn: AsyncConnection, blocker_pk: int) -> list[tuple[str, float]]:
    """(user id, blocked at) of everyone ``blocker_pk`` blocked, by user id."""
    rows = await conn.execute(
        select(blocks.c.blocked_user_id, blocks.c.created_at)
        .where(blocks.c.blocker_pk == blocker_pk)
        .order_by(blocks.c.blocked_user_id)
    )
    return [(r.blocked_user_id, float(r.created_at)) for r in rows]


async def blockers_of(conn: AsyncConnection, app_id: str, user_id: str) -> set[int]:
    """The pks of users who blocked ``user_id``: one indexed read, usually empty, on every
    send (the sender's message is not appended to these users' streams)."""
    rows = await _BLOCKERS_OF.all(conn, {"app_id": app_id, "user_id": user_id})
    return {int(pk) for (pk,) in rows}


async def has_blocked(conn: AsyncConnection, blocker_pk: int, user_id: str) -> bool:
    row = (
        await conn.execute(
            select(blocks.c.blocker_pk).where(
                blocks.c.blocker_pk == blocker_pk, blocks.c.blocked_user_id == user_id
            )
        )
    ).first()
    return row is not None


async def any_block(
    conn: AsyncConnection, app_id: str, blockers: dict[str, int], blocked: dict[str, int]
) -> bool:
    """Whether any of ``blockers`` (user id → pk) blocked any of ``blocked``."""
    if not blockers or not blocked:
        return False
    row = (
        await conn.execute(
            select(blocks.c.blocker_pk)
            .where(
                blocks.c.app_id == app_id,
                blocks.c.blocker_pk.in_(sorted(set(blockers.values()))),
                blocks.c.blocked_user_id.in_(sorted(blocked)),
            )
            .limit(1)
        )
    ).first()
    return row is not None


def blocked_sender_filter(reader_pk: Any) -> ColumnElement[bool]:
    """A WHERE clause on ``messages``: the sender is not someone ``reader_pk`` blocked.

    ``sender_pk IS NULL OR sender_pk NOT IN (…)``: a bare NOT IN would drop messages with
    no sender (NULL NOT IN a non-empty set is NULL, not true)."""
    blocked_pks = (
        select(users.c.pk)
        .select_from(
            blocks.join(
                users,
                and_(
                    users.c.app_id == blocks.c.app_id,
                    users.c.user_id == blocks.c.blocked_user_id,
                ),
            )
        )
        .where(blocks.c.blocker_pk == reader_pk)
    )
    return messages.c.sender_pk.is_(None) | messages.c.sender_pk.not_in(blocked_pks)
