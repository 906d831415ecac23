"""The per-user event stream: one shared ``events`` row, one ``user_events`` row per reader.

Appending locks the readers' ``users`` rows (in primary-key order, so concurrent appends
cannot deadlock), bumps each ``stream_head`` and writes the index rows in the same
transaction as the change itself. A position is therefore assigned and committed under the
same lock: per user, commit order equals position order, and a reader that sees position N
committed has every position below it committed too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.schema import events, user_events, users

__all__ = ["Appended", "StoredEvent", "append_event", "read_stream"]


@dataclass(frozen=True, slots=True)
class Appended:
    """What the broker must announce once the transaction commits."""

    app_id: str
    event_json: bytes
    targets: tuple[tuple[int, int], ...]
    """(user_pk, stream position) for every reader of the event."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    pos: int
    event_json: bytes


async def append_event(
    conn: AsyncConnection,
    *,
    app_id: str,
    event_type: str,
    data: dict[str, Any],
    user_pks: Sequence[int],
    now: float,
    conversation_id: str | None = None,
) -> Appended:
    payload = orjson.dumps({"type": event_type, "at": now, "data": data})
    readers = sorted(set(user_pks))
    if not readers:
        return Appended(app_id=app_id, event_json=payload, targets=())
    event_id = (
        await conn.execute(
            insert(events)
            .values(
                app_id=app_id,
                type=event_type,
                conversation_id=conversation_id,
                payload=payload.decode(),
                created_at=now,
            )
            .returning(events.c.id)
        )
    ).scalar_one()
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(users.c.pk).where(users.c.pk.in_(readers)).order_by(users.c.pk).with_for_update()
        )
    rows = (
        await conn.execute(
            update(users)
            .where(users.c.pk.in_(readers))
            .values(stream_head=users.c.stream_head + 1)
            .returning(users.c.pk, users.c.stream_head)
        )
    ).all()
    targets = tuple(sorted((int(r.pk), int(r.stream_head)) for r in rows))
    await conn.execute(
        insert(user_events),
        [{"user_pk": pk, "pos": pos, "event_id": event_id} for pk, pos in targets],
    )
    return Appended(app_id=app_id, event_json=payload, targets=targets)


async def read_stream(
    conn: AsyncConnection, user_pk: int, *, after: int, limit: int
) -> list[StoredEvent]:
    rows = await conn.execute(
        select(user_events.c.pos, events.c.payload)
        .join(events, events.c.id == user_events.c.event_id)
        .where(user_events.c.user_pk == user_pk, user_events.c.pos > after)
        .order_by(user_events.c.pos)
        .limit(limit)
    )
    return [StoredEvent(pos=int(r.pos), event_json=r.payload.encode()) for r in rows]
