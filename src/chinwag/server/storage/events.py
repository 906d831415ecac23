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
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    LargeBinary,
    Select,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.outbox import write_outbox
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import events, user_events, users

__all__ = ["MAX_PAGE_BYTES", "Appended", "StoredEvent", "append_event", "read_stream"]

MAX_PAGE_BYTES = 1024 * 1024
"""A page of a stream (REST or a socket's replay) stops before the event that would take it
past this many bytes of event JSON; a single larger event still comes alone. Without it a
page of 500 events could be hundreds of megabytes held in memory at once."""


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


_INSERT_EVENT = Prepared(
    insert(events)
    .values(
        app_id=bindparam("app_id"),
        type=bindparam("type"),
        conversation_id=bindparam("conversation_id"),
        payload=bindparam("payload"),
        created_at=bindparam("created_at", type_=Float),
    )
    .returning(events.c.id)
)
_INSERT_USER_EVENTS = Prepared(
    insert(user_events).values(
        user_pk=bindparam("user_pk"), pos=bindparam("pos"), event_id=bindparam("event_id")
    )
)


_AFTER = (
    user_events.c.user_pk == bindparam("user_pk"),
    user_events.c.pos > bindparam("after"),
)


def _sizes(size: ColumnElement[Any]) -> Select[Any]:
    """(position, payload bytes) of the next ``limit`` events: cheap, no payload copied."""
    return (
        select(user_events.c.pos, size)
        .join(events, events.c.id == user_events.c.event_id)
        .where(*_AFTER)
        .order_by(user_events.c.pos)
        .limit(bindparam("limit", type_=Integer))
    )


def _cut(size: ColumnElement[Any]) -> Select[Any]:
    """The last position of :func:`_sizes`' page that fits ``max_bytes`` (or the first)."""
    page = _sizes(size.label("size")).subquery()
    running = select(
        page.c.pos, page.c.size, func.sum(page.c.size).over(order_by=page.c.pos).label("total")
    ).subquery()
    fits = (running.c.total <= bindparam("max_bytes", type_=Integer)) | (
        running.c.total == running.c.size
    )
    return select(func.max(running.c.pos)).where(fits)


_STREAM_SIZES = Prepared(_sizes(func.length(cast(events.c.payload, LargeBinary))))
"""SQLite: the sizes, summed in Python (cheaper there than a window function)."""
_STREAM_CUT = Prepared(_cut(func.octet_length(events.c.payload)))
"""PostgreSQL: the cut computed in the database, so one row crosses the wire, not 500."""
_READ_STREAM = Prepared(
    select(user_events.c.pos, events.c.payload)
    .join(events, events.c.id == user_events.c.event_id)
    .where(*_AFTER, user_events.c.pos <= bindparam("last"))
    .order_by(user_events.c.pos)
)


def _last_within(sizes: Sequence[Any], max_bytes: int) -> int | None:
    """The last position whose running size stays within ``max_bytes`` (at least the first)."""
    last, total = None, 0
    for pos, size in sizes:
        total += int(size)
        if last is not None and total > max_bytes:
            break
        last = int(pos)
    return last


_FIXED_READERS = 8
"""Up to this many readers (every 1:1 and small group), the stream-head statements have
one parameter per reader and are prepared once per count; more use an expanding IN."""


@dataclass(frozen=True, slots=True)
class _HeadStatements:
    lock: Prepared
    """PostgreSQL: lock the readers' rows in primary-key order (see the module docstring)."""
    bump: Prepared
    """Advance each reader's ``stream_head``, returning (pk, new head)."""


def _head_statements(count: int) -> _HeadStatements:
    pks: list[BindParameter[Any]] = [bindparam(f"pk{i}") for i in range(count)]
    return _HeadStatements(
        lock=Prepared(
            select(users.c.pk).where(users.c.pk.in_(pks)).order_by(users.c.pk).with_for_update()
        ),
        bump=Prepared(
            update(users)
            .where(users.c.pk.in_(pks))
            .values(stream_head=users.c.stream_head + 1)
            .returning(users.c.pk, users.c.stream_head)
        ),
    )


_HEADS = {count: _head_statements(count) for count in range(1, _FIXED_READERS + 1)}


async def _advance_heads(conn: AsyncConnection, readers: list[int]) -> list[tuple[int, int]]:
    """Lock (PostgreSQL) and bump the sorted, distinct ``readers``' stream heads."""
    postgres = conn.dialect.name == "postgresql"
    fixed = _HEADS.get(len(readers))
    if fixed is not None:
        params = {f"pk{i}": pk for i, pk in enumerate(readers)}
        if postgres:
            await fixed.lock.all(conn, params)
        rows = await fixed.bump.all(conn, params)
    else:
        if postgres:
            await conn.execute(
                select(users.c.pk)
                .where(users.c.pk.in_(readers))
                .order_by(users.c.pk)
                .with_for_update()
            )
        rows = list(
            await conn.execute(
                update(users)
                .where(users.c.pk.in_(readers))
                .values(stream_head=users.c.stream_head + 1)
                .returning(users.c.pk, users.c.stream_head)
            )
        )
    return sorted((int(pk), int(head)) for pk, head in rows)


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
    inserted = await _INSERT_EVENT.first(
        conn,
        {
            "app_id": app_id,
            "type": event_type,
            "conversation_id": conversation_id,
            "payload": payload.decode(),
            "created_at": now,
        },
    )
    assert inserted is not None
    event_id = int(inserted[0])
    targets = tuple(await _advance_heads(conn, readers))
    await _INSERT_USER_EVENTS.many(
        conn, [{"user_pk": pk, "pos": pos, "event_id": event_id} for pk, pos in targets]
    )
    await write_outbox(
        conn, app_id=app_id, event_type=event_type, data=data, now=now,
        conversation_id=conversation_id, readers=readers,
    )  # fmt: skip
    return Appended(app_id=app_id, event_json=payload, targets=targets)


async def read_stream(
    conn: AsyncConnection, user_pk: int, *, after: int, limit: int, max_bytes: int = MAX_PAGE_BYTES
) -> list[StoredEvent]:
    """Events after ``after``, ascending: at most ``limit`` and about ``max_bytes``.

    Two reads: where the page must end, then the payloads up to there. One query with a
    running ``sum() OVER`` beside the payloads did the same but cost twice a plain page
    read on both databases (the payloads were copied through the window's subqueries)."""
    params = {"user_pk": user_pk, "after": after, "limit": limit}
    last: int | None
    if conn.dialect.name == "postgresql":
        found = await _STREAM_CUT.first(conn, {**params, "max_bytes": max_bytes})
        last = None if found is None or found[0] is None else int(found[0])
    else:
        last = _last_within(await _STREAM_SIZES.all(conn, params), max_bytes)
    if last is None:
        return []
    rows = await _READ_STREAM.all(conn, {"user_pk": user_pk, "after": after, "last": last})
    return [StoredEvent(pos=int(pos), event_json=payload.encode()) for pos, payload in rows]
