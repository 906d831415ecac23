"""Users: created and updated from identity-token claims; one stream head each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.records import UserRecord
from chinwag.server.storage.schema import participants, users

__all__ = [
    "PROFILE_FIELDS",
    "find_by_email",
    "find_users",
    "get_user",
    "get_user_by_pk",
    "get_users_by_pk",
    "identity_audience",
    "insert_user",
    "list_agents",
    "set_agent",
    "stream_heads",
    "update_user",
]

PROFILE_FIELDS = ("display_name", "avatar_url", "email", "first_name", "last_name")


_COLUMNS = [users.c[f] for f in UserRecord.__slots__]
_GET_USER = Prepared(
    select(*_COLUMNS).where(
        users.c.app_id == bindparam("app_id"), users.c.user_id == bindparam("user_id")
    )
)
_GET_USER_BY_PK = Prepared(select(*_COLUMNS).where(users.c.pk == bindparam("pk")))
_INSERT_USER = Prepared(
    insert(users)
    .values({c.name: bindparam(c.name) for c in users.c if c.name != "pk"})
    .returning(*_COLUMNS)
)


def _user(row: Any) -> UserRecord:
    """From a row in ``UserRecord`` field order (SQLite gives booleans as 0/1)."""
    pk, app_id, user_id, anonymous, display, avatar, email, first, last, head, created, updated = (
        row[:12]
    )
    return UserRecord(
        pk=int(pk),
        app_id=app_id,
        user_id=user_id,
        anonymous=bool(anonymous),
        display_name=display,
        avatar_url=avatar,
        email=email,
        first_name=first,
        last_name=last,
        stream_head=int(head),
        created_at=float(created),
        updated_at=float(updated),
        agent=bool(row[12]),
        suspended_at=None if row[13] is None else float(row[13]),
        bot=bool(row[14]),
    )


async def get_user(conn: AsyncConnection, app_id: str, user_id: str) -> UserRecord | None:
    row = await _GET_USER.first(conn, {"app_id": app_id, "user_id": user_id})
    return _user(row) if row else None


async def get_user_by_pk(conn: AsyncConnection, pk: int) -> UserRecord | None:
    row = await _GET_USER_BY_PK.first(conn, {"pk": pk})
    return _user(row) if row else None


async def get_users_by_pk(conn: AsyncConnection, pks: list[int]) -> dict[int, UserRecord]:
    if not pks:
        return {}
    rows = await conn.execute(select(*_COLUMNS).where(users.c.pk.in_(pks)))
    return {int(r.pk): _user(r) for r in rows}


async def stream_heads(conn: AsyncConnection, pks: list[int]) -> list[tuple[int, int]]:
    """(pk, stream head) of each of these users."""
    rows = await conn.execute(select(users.c.pk, users.c.stream_head).where(users.c.pk.in_(pks)))
    return [(int(pk), int(head)) for pk, head in rows]


async def find_by_email(conn: AsyncConnection, app_id: str, email: str) -> UserRecord | None:
    row = (
        await conn.execute(
            select(*_COLUMNS)
            .where(users.c.app_id == app_id, users.c.email == email, users.c.anonymous.is_(False))
            .order_by(users.c.pk)
            .limit(1)
        )
    ).first()
    return _user(row) if row else None


async def insert_user(
    conn: AsyncConnection,
    *,
    app_id: str,
    user_id: str,
    anonymous: bool,
    profile: dict[str, str | None],
    now: float,
    bot: bool = False,
) -> UserRecord:
    values: dict[str, object] = {
        "app_id": app_id,
        "user_id": user_id,
        "anonymous": anonymous,
        "stream_head": 0,
        "agent": False,
        "suspended_at": None,
        "bot": bot,
        "created_at": now,
        "updated_at": now,
        **dict.fromkeys(PROFILE_FIELDS),
        **profile,
    }
    row = await _INSERT_USER.first(conn, values)
    assert row is not None
    return _user(row)


async def update_user(conn: AsyncConnection, pk: int, changes: dict[str, Any]) -> None:
    await conn.execute(update(users).where(users.c.pk == pk).values(**changes))


async def find_users(
    conn: AsyncConnection, app_id: str, user_ids: list[str]
) -> dict[str, tuple[int, bool]]:
    """user_id → (pk, agent) for those of ``user_ids`` the app already has."""
    rows = await conn.execute(
        select(users.c.user_id, users.c.pk, users.c.agent).where(
            users.c.app_id == app_id, users.c.user_id.in_(sorted(set(user_ids)))
        )
    )
    return {r.user_id: (int(r.pk), bool(r.agent)) for r in rows}


async def set_agent(conn: AsyncConnection, app_id: str, user_ids: list[str], agent: bool) -> None:
    """Mark (or unmark) existing users as designated agents."""
    if user_ids:
        await conn.execute(
            update(users)
            .where(users.c.app_id == app_id, users.c.user_id.in_(sorted(set(user_ids))))
            .values(agent=agent)
        )


async def list_agents(conn: AsyncConnection, app_id: str) -> list[str]:
    rows = await conn.execute(
        select(users.c.user_id)
        .where(users.c.app_id == app_id, users.c.agent.is_(True))
        .order_by(users.c.user_id)
    )
    return [r.user_id for r in rows]


async def identity_audience(conn: AsyncConnection, user_pk: int) -> list[int]:
    """Who sees this user's identity change: the user and everyone sharing a conversation."""
    mine = participants.alias("mine")
    theirs = participants.alias("theirs")
    rows = await conn.execute(
        select(theirs.c.user_pk)
        .distinct()
        .join(mine, mine.c.conversation_id == theirs.c.conversation_id)
        .where(mine.c.user_pk == user_pk, mine.c.left_at.is_(None), theirs.c.left_at.is_(None))
    )
    return sorted({user_pk, *(int(r.user_pk) for r in rows)})
