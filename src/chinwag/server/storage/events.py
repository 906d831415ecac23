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
    CompoundSelect,
    Float,
    FromClause,
    Integer,
    LargeBinary,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.outbox import write_outbox
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import events, user_events, users
from chinwag.server.storage.spans import merge_conversation

__all__ = [
    "MAX_PAGE_BYTES",
    "Appended",
    "PageRequest",
    "StoredEvent",
    "StoredPage",
    "append_event",
    "insert_event",
    "log_payloads",
    "read_stream",
    "read_stream_page",
    "read_stream_pages",
]

Row = Sequence[Any]

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


def _entries(
    user_pk: ColumnElement[Any],
    after: ColumnElement[Any],
    limit: ColumnElement[Any],
    outer: FromClause | None,
) -> CompoundSelect[Any]:
    """The entries after ``after``, and first the one holding ``after`` itself (a span may
    go on past it). Subqueries, because SQLite allows ``ORDER BY``/``LIMIT`` in a
    compound's members only there."""
    following = (
        select(*_ENTRY)
        .where(user_events.c.user_pk == user_pk, user_events.c.pos > after)
        .order_by(user_events.c.pos)
        .limit(limit)
        .correlate(outer)
        .subquery()
    )
    holding = (
        select(*_ENTRY)
        .where(user_events.c.user_pk == user_pk, user_events.c.pos <= after)
        .order_by(user_events.c.pos.desc())
        .limit(1)
        .correlate(outer)
        .subquery()
    )
    return union_all(select(*holding.c), select(*following.c))


def _payload_size(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.octet_length(events.c.payload)
    return func.length(cast(events.c.payload, LargeBinary))


def _page(dialect: str, requests: FromClause | None = None) -> Select[Any]:
    """A page of a stream in one statement: (position, event id, payload size, payload or
    NULL), ascending, for positions ``after+1 .. after+limit``.

    The entries (``_entries``) are expanded in SQL: a single entry is its event, a span
    is a range of its conversation's log (one index range scan), clipped to the page. A
    stream is dense, so the page's positions are known without counting slots. A payload
    comes only when it is at most ``max_bytes`` over the page's row count, so what one
    read returns stays within ``max_bytes`` however large the events; larger ones are read
    after, if the page keeps them (``read_stream_page``). On PostgreSQL this is one round
    trip: a delivery heard of from another node is one statement, where expanding the
    entries in Python cost three.

    The user, position and limit are bind parameters, or with ``requests`` (``_pages``)
    that relation's columns ``user_pk``, ``after`` and ``page_limit``, for many pages in
    one statement."""
    if requests is None:
        user_pk: ColumnElement[Any] = bindparam("user_pk")
        after: ColumnElement[Any] = bindparam("after", type_=BigInteger)
        limit: ColumnElement[Any] = bindparam("limit", type_=Integer)
    else:
        user_pk, after, limit = (requests.c.user_pk, requests.c.after, requests.c.page_limit)
    # Under ``_pages`` the WITH must sit inside the lateral subquery, which sees the
    # request's columns, not at the top of the statement.
    entries = _entries(user_pk, after, limit, requests).cte("entries", nesting=requests is not None)
    end = after + limit
    size = _payload_size(dialect)
    singles = (
        select(entries.c.pos.label("at"), events.c.id, size.label("size"), events.c.payload)
        .join_from(entries, events, events.c.id == entries.c.event_id)
        .where(entries.c.last_pos.is_(None), entries.c.pos > after, entries.c.pos <= end)
        .correlate(requests)
    )
    first = entries.c.first_log_position
    spans = (
        select(
            (entries.c.pos + events.c.log_position - first).label("at"),
            events.c.id,
            size.label("size"),
            events.c.payload,
        )
        .join_from(
            entries,
            events,
            and_(
                events.c.conversation_id == entries.c.conversation_id,
                events.c.log_position >= first,
                events.c.log_position > first + after - entries.c.pos,
                events.c.log_position <= first + entries.c.last_pos - entries.c.pos,
                events.c.log_position <= first + end - entries.c.pos,
            ),
        )
        .where(entries.c.last_pos.is_not(None))
        .correlate(requests)
    )
    share = bindparam("max_bytes", type_=Integer) // func.count().over()
    if dialect == "postgresql":
        found = union_all(singles, spans).subquery("found")
        capped = case((found.c.size <= share, found.c.payload), else_=null())
        return select(found.c.at, found.c.id, found.c.size, capped).order_by(found.c.at)
    # SQLite computes the window over a materialized copy of its rows: with the payloads
    # in them, a page of 500 events of 60 KB copied 30 MB into a temporary table (~80 ms
    # of CPU a page). The window runs over (position, id, size) only, and the payloads a
    # page may carry are read after it, by rowid.
    found = union_all(
        *(part.with_only_columns(*part.selected_columns[:3]) for part in (singles, spans))
    ).subquery("found")
    sized = select(*found.c, share.label("share")).subquery("sized")
    capped = case((sized.c.size <= sized.c.share, events.c.payload), else_=null())
    return (
        select(sized.c.at, sized.c.id, sized.c.size, capped)
        .join_from(sized, events, events.c.id == sized.c.id)
        .order_by(sized.c.at)
    )


def _pages() -> Select[Any]:
    """PostgreSQL: the pages of many streams in one statement, one round trip for every
    socket a coalesced doorbell woke (``read_batching.py``): ``_page`` laterally joined to
    the requests; rows are (request number, then ``_page``'s columns), by number and
    position.

    The requests come as one JSON array (``jsonb_to_recordset``), not as arrays through
    ``unnest``: PostgreSQL estimates ``unnest`` of a known array by its length, so every
    execution's custom plan looked cheaper than the prepared generic one and the statement
    was planned afresh each time (one request cost twice a lone page). A record set has
    the same estimate planned or not, so the generic plan is kept: one request costs what
    a lone page does, and eight about two of them (``read_stream_pages`` reads a lone
    request with ``_page`` all the same)."""
    requests = (
        func.jsonb_to_recordset(cast(bindparam("requests", type_=String), JSONB))
        .table_valued(
            column("n", Integer),
            column("user_pk", BigInteger),
            column("after", BigInteger),
            column("page_limit", Integer),
        )
        .render_derived(name="requests", with_types=True)
    )
    lateral = _page("postgresql", requests).lateral("page")
    return (
        select(requests.c.n, *lateral.c)
        .select_from(requests)
        .join(lateral, true())
        .order_by(requests.c.n, lateral.c.at)
    )


_PAGE = Prepared(_page("sqlite"), postgresql=_page("postgresql"))
_PAGES = Prepared(_pages())


def _by_log(*columns: ColumnElement[Any]) -> Prepared:
    return Prepared(
        select(events.c.log_position, *columns).where(
            events.c.conversation_id == bindparam("conv_id"),
            events.c.log_position >= bindparam("low"),
            events.c.log_position <= bindparam("high"),
        )
    )


_LOG_PAYLOADS = _by_log(events.c.payload)


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
    webhook: bool = True,
) -> Appended:
    """``webhook``: False when the app is told of this change another way (the stream
    event is one reader's side of it: ``core.webhook_events``)."""
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
    outbox = webhook and await write_outbox(
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

    One statement (``_page``) gives the page's positions with their sizes, and the
    payloads small enough that all of them together stay within ``max_bytes``; the sizes
    say where the page must end (a page of 500 events could otherwise be hundreds of
    megabytes), and a larger payload the page keeps is read after, by id."""
    params = {"user_pk": user_pk, "after": after, "limit": limit, "max_bytes": max_bytes}
    rows = await _PAGE.all(conn, params)
    return (await _assemble(conn, [(rows, limit)], max_bytes))[0]


@dataclass(frozen=True, slots=True)
class PageRequest:
    user_pk: int
    after: int
    limit: int


async def read_stream_pages(
    conn: AsyncConnection, requests: Sequence[PageRequest], *, max_bytes: int = MAX_PAGE_BYTES
) -> list[StoredPage]:
    """:func:`read_stream_page` for each request, in order; on PostgreSQL in one statement
    however many there are (``_pages``; a lone one with ``_page``), with each page bounded
    as if read alone."""
    if len(requests) < 2 or conn.dialect.name != "postgresql":
        return [
            await read_stream_page(
                conn, r.user_pk, after=r.after, limit=r.limit, max_bytes=max_bytes
            )
            for r in requests
        ]
    asked = [
        {"n": n, "user_pk": r.user_pk, "after": r.after, "page_limit": r.limit}
        for n, r in enumerate(requests)
    ]
    params = {"requests": orjson.dumps(asked).decode(), "max_bytes": max_bytes}
    by_request: list[list[Row]] = [[] for _ in requests]
    for row in await _PAGES.all(conn, params):
        by_request[int(row[0])].append(row[1:])
    return await _assemble(
        conn, [(rows, r.limit) for rows, r in zip(by_request, requests, strict=True)], max_bytes
    )


async def _assemble(
    conn: AsyncConnection, pages: Sequence[tuple[Sequence[Row], int]], max_bytes: int
) -> list[StoredPage]:
    """Pages from ``_page``'s rows (each with the limit it was read with): cut at
    ``max_bytes``, the payloads the statement left out read by id, in one statement for
    all of them."""
    kept_pages: list[tuple[list[Row], bool]] = []
    missing: list[int] = []
    for rows, limit in pages:
        if not rows:
            kept_pages.append(([], True))
            continue
        last = _last_within([(row[0], row[2]) for row in rows], max_bytes)
        kept = [row for row in rows if last is not None and int(row[0]) <= last]
        missing.extend(int(row[1]) for row in kept if row[3] is None)
        kept_pages.append((kept, len(rows) < limit and len(kept) == len(rows)))
    more: dict[int, Any] = {}
    if missing:
        found = await conn.execute(
            select(events.c.id, events.c.payload).where(events.c.id.in_(missing))
        )
        more = {int(event_id): payload for event_id, payload in found}
    return [
        StoredPage(
            [
                StoredEvent(
                    pos=int(at),
                    event_json=(payload if payload is not None else more[int(ev)]).encode(),
                )
                for at, ev, _, payload in kept
            ],
            complete=complete,
        )
        for kept, complete in kept_pages
    ]


async def log_payloads(
    conn: AsyncConnection, conversation_id: str, low: int, high: int
) -> dict[int, bytes]:
    """The event JSON at each of a conversation's log positions ``low..high``."""
    params = {"conv_id": conversation_id, "low": low, "high": high}
    rows = await _LOG_PAYLOADS.all(conn, params)
    return {int(log): payload.encode() for log, payload in rows}
