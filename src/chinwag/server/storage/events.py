"""The per-user event stream: one shared ``events`` row, one ``user_events`` row per reader.

Appending locks the readers' ``users`` rows (in primary-key order, so concurrent appends
cannot deadlock), bumps each ``stream_head`` and writes the index rows in the same
transaction as the change itself. A position is therefore assigned and committed under the
same lock: per user, commit order equals position order, and a reader that sees position N
committed has every position below it committed too.

The lock is ``FOR NO KEY UPDATE``, the lock the ``stream_head`` UPDATE takes anyway, not
``FOR UPDATE``: a transaction that has inserted a row referencing a user (a participant,
a session) holds ``FOR KEY SHARE`` on that user, which ``FOR UPDATE`` waits for. Two
creations by one user then each held KEY SHARE on the creator and waited for the other's
to upgrade: 8 concurrent creations deadlocked (tests/server/test_concurrent_creates.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    LargeBinary,
    Update,
    bindparam,
    case,
    cast,
    func,
    insert,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.outbox import write_outbox
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import events, user_events, users
from chinwag.server.storage.spans import merge_conversation

__all__ = [
    "MAX_PAGE_BYTES",
    "Appended",
    "StoredEvent",
    "StoredPage",
    "append_event",
    "insert_event",
    "log_payloads",
    "read_stream",
    "read_stream_page",
]

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
    outbox: bool = False
    """Rows for the webhook or push workers were written (``storage/outbox.py``)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    pos: int
    event_json: bytes


@dataclass(frozen=True, slots=True)
class StoredPage:
    events: list[StoredEvent]
    complete: bool
    """The page holds everything the stream had past ``after`` when it was read (neither
    the count nor the byte bound cut it): a reader that is told of nothing newer need not
    read again to learn that it is current."""


_INSERT_EVENT = Prepared(
    insert(events)
    .values(
        app_id=bindparam("app_id"),
        type=bindparam("type"),
        conversation_id=bindparam("conversation_id"),
        payload=bindparam("payload"),
        created_at=bindparam("created_at", type_=Float),
        log_position=bindparam("log_position", type_=BigInteger),
    )
    .returning(events.c.id)
)
_INSERT_USER_EVENTS = Prepared(
    insert(user_events).values(
        user_pk=bindparam("user_pk"), pos=bindparam("pos"), event_id=bindparam("event_id")
    )
)


_ENTRY = (
    user_events.c.pos,
    user_events.c.last_pos,
    user_events.c.event_id,
    user_events.c.conversation_id,
    user_events.c.first_log_position,
)
_AFTER = (
    select(*_ENTRY)
    .where(user_events.c.user_pk == bindparam("user_pk"), user_events.c.pos > bindparam("after"))
    .order_by(user_events.c.pos)
    .limit(bindparam("limit", type_=Integer))
    .subquery()
)
_HOLDING = (
    select(*_ENTRY)
    .where(user_events.c.user_pk == bindparam("user_pk"), user_events.c.pos <= bindparam("after"))
    .order_by(user_events.c.pos.desc())
    .limit(1)
    .subquery()
)
_ENTRIES = Prepared(union_all(select(*_HOLDING.c), select(*_AFTER.c)))
"""The entries after ``after``, and first the one holding ``after`` itself (a span may go
on past it): one statement, one round trip on PostgreSQL. Subqueries, because SQLite
allows ``ORDER BY``/``LIMIT`` in a compound's members only there."""


def _payload_size(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.octet_length(events.c.payload)
    return func.length(cast(events.c.payload, LargeBinary))


def _capped(size: ColumnElement[Any]) -> ColumnElement[Any]:
    """The payload when its ``size`` is at most ``:cap`` bytes, else NULL."""
    return case((size <= bindparam("cap", type_=Integer), events.c.payload), else_=null())


def _by_log(*columns: ColumnElement[Any]) -> Prepared:
    return Prepared(
        select(events.c.log_position, *columns).where(
            events.c.conversation_id == bindparam("conv_id"),
            events.c.log_position >= bindparam("low"),
            events.c.log_position <= bindparam("high"),
        )
    )


_LOG_SIZED = {
    d: _by_log(_payload_size(d), _capped(_payload_size(d))) for d in ("sqlite", "postgresql")
}
_LOG_PAYLOADS = _by_log(events.c.payload)

Slot = tuple[int, int | None, str | None, int | None]
"""(stream position, event id of a single entry, conversation and log position of a span's)."""


def _slots(entries: Sequence[Any], after: int, limit: int) -> list[Slot]:
    """The stream positions after ``after`` the entries hold, at most ``limit``."""
    slots: list[Slot] = []
    for pos, last_pos, event_id, conversation_id, first_log in entries:
        if last_pos is None:
            if pos > after:
                slots.append((int(pos), int(event_id), None, None))
        else:
            for at in range(max(int(pos), after + 1), int(last_pos) + 1):
                slots.append((at, None, str(conversation_id), int(first_log) + at - int(pos)))
                if len(slots) >= limit:
                    break
        if len(slots) >= limit:
            break
    return slots[:limit]


async def _values(
    conn: AsyncConnection,
    slots: list[Slot],
    columns: tuple[ColumnElement[Any], ...],
    by_log: Prepared,
    extra: dict[str, Any],
) -> list[tuple[Any, ...]]:
    """``columns`` of each slot's event, in slot order (``by_log`` selects them by log
    position, after the log position; ``extra``: its parameters besides the range)."""
    singles = [s[1] for s in slots if s[1] is not None]
    by_id: dict[int, tuple[Any, ...]] = {}
    if singles:
        found = await conn.execute(
            select(events.c.id, *columns).where(events.c.id.in_(singles)), extra
        )
        by_id = {int(row[0]): tuple(row[1:]) for row in found}
    ranges: dict[str, list[int]] = {}
    for _, _, conversation_id, log in slots:
        if conversation_id is not None and log is not None:
            ranges.setdefault(conversation_id, []).append(log)
    by_key: dict[tuple[str, int], tuple[Any, ...]] = {}
    for conversation_id, logs in ranges.items():
        params = {"conv_id": conversation_id, "low": min(logs), "high": max(logs), **extra}
        for row in await by_log.all(conn, params):
            by_key[(conversation_id, int(row[0]))] = tuple(row[1:])
    return [
        by_id[ev] if ev is not None else by_key[(str(conv), int(log or 0))]
        for _, ev, conv, log in slots
    ]


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


def _bumps(pks: Sequence[Any]) -> tuple[Update, Update]:
    """Advance each reader's ``stream_head``, returning (pk, new head): the plain UPDATE,
    and PostgreSQL's, which first locks the rows ``FOR NO KEY UPDATE`` in primary-key order
    in a sub-select (see the module docstring): one round trip, not a SELECT and an UPDATE."""
    advance = {"stream_head": users.c.stream_head + 1}
    plain = (
        update(users)
        .where(users.c.pk.in_(pks))
        .values(advance)
        .returning(users.c.pk, users.c.stream_head)
    )
    locked = (
        select(users.c.pk)
        .where(users.c.pk.in_(pks))
        .order_by(users.c.pk)
        .with_for_update(key_share=True)
        .subquery("locked")
    )
    in_order = (
        update(users)
        .where(users.c.pk == locked.c.pk)
        .values(advance)
        .returning(users.c.pk, users.c.stream_head)
    )
    return plain, in_order


def _head_statement(count: int) -> Prepared:
    plain, in_order = _bumps([bindparam(f"pk{i}") for i in range(count)])
    return Prepared(plain, postgresql=in_order)


_HEADS = {count: _head_statement(count) for count in range(1, _FIXED_READERS + 1)}


async def _advance_heads(conn: AsyncConnection, readers: list[int]) -> list[tuple[int, int]]:
    """Lock (PostgreSQL) and bump the sorted, distinct ``readers``' stream heads."""
    fixed = _HEADS.get(len(readers))
    if fixed is not None:
        rows = await fixed.all(conn, {f"pk{i}": pk for i, pk in enumerate(readers)})
    else:
        plain, in_order = _bumps(readers)
        statement = in_order if conn.dialect.name == "postgresql" else plain
        rows = [tuple(row) for row in await conn.execute(statement)]
    return sorted((int(pk), int(head)) for pk, head in rows)


async def insert_event(
    conn: AsyncConnection,
    *,
    app_id: str,
    event_type: str,
    payload: bytes,
    now: float,
    conversation_id: str | None,
    log_position: int | None = None,
) -> int:
    """The shared ``events`` row (written once, whatever the number of readers); its id.
    ``log_position``: a message's position in its conversation's log (``spans.py``)."""
    inserted = await _INSERT_EVENT.first(
        conn,
        {
            "app_id": app_id,
            "type": event_type,
            "conversation_id": conversation_id,
            "payload": payload.decode(),
            "created_at": now,
            "log_position": log_position,
        },
    )
    assert inserted is not None
    return int(inserted[0])


def event_payload(event_type: str, data: dict[str, Any], now: float) -> bytes:
    """An event's stored JSON, as every stream and log serves it."""
    return orjson.dumps({"type": event_type, "at": now, "data": data})


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
    payload = event_payload(event_type, data, now)
    readers = sorted(set(user_pks))
    if not readers:
        return Appended(app_id=app_id, event_json=payload, targets=())
    if conversation_id is not None:
        # The conversation's messages before this event come before it in every stream.
        await merge_conversation(conn, conversation_id, readers)
    event_id = await insert_event(
        conn, app_id=app_id, event_type=event_type, payload=payload, now=now,
        conversation_id=conversation_id,
    )  # fmt: skip
    targets = tuple(await _advance_heads(conn, readers))
    await _INSERT_USER_EVENTS.many(
        conn, [{"user_pk": pk, "pos": pos, "event_id": event_id} for pk, pos in targets]
    )
    outbox = await write_outbox(
        conn, app_id=app_id, event_type=event_type, data=data, now=now,
        conversation_id=conversation_id, readers=readers,
    )  # fmt: skip
    return Appended(app_id=app_id, event_json=payload, targets=targets, outbox=outbox)


async def read_stream(
    conn: AsyncConnection, user_pk: int, *, after: int, limit: int, max_bytes: int = MAX_PAGE_BYTES
) -> list[StoredEvent]:
    """Events after ``after``, ascending: at most ``limit`` and about ``max_bytes``."""
    page = await read_stream_page(conn, user_pk, after=after, limit=limit, max_bytes=max_bytes)
    return page.events


async def read_stream_page(
    conn: AsyncConnection, user_pk: int, *, after: int, limit: int, max_bytes: int = MAX_PAGE_BYTES
) -> StoredPage:
    """:func:`read_stream`, saying whether the page reached the stream's end.

    Index rows and spans (``storage/spans.py``) are expanded into positions first; then
    the sizes of their events say where the page must end, and only the payloads up to
    there are kept (a page of 500 events could otherwise be hundreds of megabytes). The
    sizes come with every payload of at most ``max_bytes / slots`` bytes, so what is read
    stays within ``max_bytes`` and a page of chat messages takes two statements (on
    PostgreSQL round trips), not four; larger payloads are read after, if the page keeps
    them."""
    params = {"user_pk": user_pk, "after": after, "limit": limit}
    entries = sorted(await _ENTRIES.all(conn, params), key=lambda entry: int(entry[0]))
    slots = _slots(entries, after, limit)
    if not slots:
        return StoredPage([], complete=True)
    # Sizes, and with them each payload small enough that all of them together stay within
    # max_bytes: for a page of chat messages that is the page, in one statement per source.
    cap = max(1, max_bytes // len(slots))
    dialect = conn.dialect.name
    size = _payload_size(dialect)
    found = await _values(conn, slots, (size, _capped(size)), _LOG_SIZED[dialect], {"cap": cap})
    sized = [(slot[0], row[0]) for slot, row in zip(slots, found, strict=True)]
    last = _last_within(sized, max_bytes)
    kept = [
        (slot, row[1])
        for slot, row in zip(slots, found, strict=True)
        if last is not None and slot[0] <= last
    ]
    missing = [slot for slot, payload in kept if payload is None]
    more: dict[int, Any] = {}
    if missing:
        rows = await _values(conn, missing, (events.c.payload,), _LOG_PAYLOADS, {})
        more = {slot[0]: row[0] for slot, row in zip(missing, rows, strict=True)}
    found_events = [
        StoredEvent(
            pos=slot[0], event_json=(payload if payload is not None else more[slot[0]]).encode()
        )
        for slot, payload in kept
    ]
    complete = len(slots) < limit and len(kept) == len(slots)
    return StoredPage(found_events, complete=complete)


async def log_payloads(
    conn: AsyncConnection, conversation_id: str, low: int, high: int
) -> dict[int, bytes]:
    """The event JSON at each of a conversation's log positions ``low..high``."""
    params = {"conv_id": conversation_id, "low": low, "high": high}
    rows = await _LOG_PAYLOADS.all(conn, params)
    return {int(log): payload.encode() for log, payload in rows}
