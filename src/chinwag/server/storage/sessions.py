"""Sessions, consumed nonces and used jtis (the single-use records)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.records import SessionRecord
from chinwag.server.storage.schema import consumed_nonces, sessions, used_jtis

__all__ = [
    "SESSION_COLUMNS",
    "Revocation",
    "app_live_sessions",
    "consume_nonce",
    "get_session",
    "insert_session",
    "live_sessions",
    "purge_expired",
    "record_jti",
    "revoke_session",
    "revoked_among",
    "session_from_row",
    "touch_session",
    "touch_sessions",
    "user_session_ids",
]


def _insert_once(table: Table) -> Prepared:
    """INSERT … ON CONFLICT DO NOTHING: changes one row for exactly one of any concurrent
    callers."""
    values: dict[str, Any] = {c.name: bindparam(c.name) for c in table.c}
    return Prepared(
        sqlite_insert(table).values(values).on_conflict_do_nothing(),
        postgresql=pg_insert(table).values(values).on_conflict_do_nothing(),
    )


_CONSUME_NONCE = _insert_once(consumed_nonces)
_RECORD_JTI = _insert_once(used_jtis)
_INSERT_SESSION = Prepared(
    insert(sessions).values({f: bindparam(f) for f in SessionRecord.__slots__})
)
SESSION_COLUMNS = tuple(sessions.c[f] for f in SessionRecord.__slots__)
"""A session's columns in ``SessionRecord`` field order (:func:`session_from_row`)."""
_GET_SESSION = Prepared(select(*SESSION_COLUMNS).where(sessions.c.id == bindparam("session_id")))


def session_from_row(row: Any) -> SessionRecord:
    """From a row in ``SessionRecord`` field order."""
    id_, app_id, user_pk, secret_hash, created, expires, revoked_at, revoked_reason, wipe = row[:9]
    last_seen, address, device_label = row[9:12]
    return SessionRecord(
        id=id_,
        app_id=app_id,
        user_pk=int(user_pk),
        secret_hash=bytes(secret_hash),
        created_at=float(created),
        expires_at=float(expires),
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        wipe=bool(wipe),
        last_seen_at=None if last_seen is None else float(last_seen),
        address=address,
        device_label=device_label,
    )


async def consume_nonce(
    conn: AsyncConnection, *, key: bytes, app_id: str, expires_at: float
) -> bool:
    """Record the nonce as used; False when it already was (another request won)."""
    params = {"key": key, "app_id": app_id, "expires_at": expires_at}
    return await _CONSUME_NONCE.rowcount(conn, params) == 1


async def record_jti(conn: AsyncConnection, *, app_id: str, jti: str, expires_at: float) -> bool:
    params = {"app_id": app_id, "jti": jti, "expires_at": expires_at}
    return await _RECORD_JTI.rowcount(conn, params) == 1


async def insert_session(conn: AsyncConnection, record: SessionRecord) -> None:
    await _INSERT_SESSION.rowcount(conn, {f: getattr(record, f) for f in record.__slots__})


async def get_session(conn: AsyncConnection, session_id: str) -> SessionRecord | None:
    row = await _GET_SESSION.first(conn, {"session_id": session_id})
    return session_from_row(row) if row else None


async def revoke_session(
    conn: AsyncConnection, session_id: str, *, now: float, reason: str, wipe: bool = False
) -> bool:
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason, wipe=wipe)
    )
    return bool(result.rowcount)


async def user_session_ids(conn: AsyncConnection, user_pk: int, *, now: float) -> list[str]:
    rows = await conn.execute(
        select(sessions.c.id).where(
            sessions.c.user_pk == user_pk,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
    )
    return [r.id for r in rows]


async def purge_expired(conn: AsyncConnection, *, now: float) -> None:
    """Single-use records can go once what they guard has expired anyway."""
    await conn.execute(delete(consumed_nonces).where(consumed_nonces.c.expires_at < now))
    await conn.execute(delete(used_jtis).where(used_jtis.c.expires_at < now))


class Revocation(NamedTuple):
    """How a session ended: the reason, and whether its devices must wipe local data."""

    reason: str
    wipe: bool


# Built once, with the id lists as parameters: ``in_(a_list)`` builds an expanding bind
# parameter that SQLAlchemy links in a reference cycle, garbage for the cycle collector on
# every call (server/heap.py says why the server avoids those).
_REVOKED_AMONG = select(sessions.c.id, sessions.c.revoked_reason, sessions.c.wipe).where(
    sessions.c.id.in_(bindparam("session_ids", expanding=True)),
    sessions.c.revoked_at.is_not(None),
)
_TOUCH_SESSIONS = (
    update(sessions)
    .where(
        sessions.c.id.in_(bindparam("session_ids", expanding=True)),
        sessions.c.last_seen_at.is_(None) | (sessions.c.last_seen_at <= bindparam("unless_after")),
    )
    .values(last_seen_at=bindparam("now"))
)


async def revoked_among(conn: AsyncConnection, session_ids: list[str]) -> dict[str, Revocation]:
    """The revoked sessions among ``session_ids`` (id → how), in chunks of 500."""
    found: dict[str, Revocation] = {}
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        rows = await conn.execute(_REVOKED_AMONG, {"session_ids": chunk})
        found.update({r.id: Revocation(r.revoked_reason or "revoked", bool(r.wipe)) for r in rows})
    return found


async def touch_session(
    conn: AsyncConnection, session_id: str, *, now: float, unless_after: float
) -> None:
    """Set ``last_seen_at`` unless a concurrent request already did, this minute."""
    await conn.execute(
        update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.last_seen_at.is_(None) | (sessions.c.last_seen_at <= unless_after),
        )
        .values(last_seen_at=now)
    )


_SESSION_COLUMNS = [sessions.c[f] for f in SessionRecord.__slots__]


async def live_sessions(conn: AsyncConnection, user_pk: int, *, now: float) -> list[SessionRecord]:
    """A user's sessions that neither ended nor expired, oldest first."""
    rows = await conn.execute(
        select(*_SESSION_COLUMNS)
        .where(
            sessions.c.user_pk == user_pk,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .order_by(sessions.c.created_at, sessions.c.id)
    )
    return [session_from_row(r) for r in rows]


async def app_live_sessions(
    conn: AsyncConnection, app_id: str, *, now: float, issued_before: float | None = None
) -> list[tuple[str, int]]:
    """(session id, user pk) of an app's live sessions, optionally only older ones."""
    query = select(sessions.c.id, sessions.c.user_pk).where(
        sessions.c.app_id == app_id,
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > now,
    )
    if issued_before is not None:
        query = query.where(sessions.c.created_at < issued_before)
    rows = await conn.execute(query)
    return [(r.id, int(r.user_pk)) for r in rows]


async def touch_sessions(
    conn: AsyncConnection, session_ids: list[str], *, now: float, unless_after: float
) -> None:
    """:func:`touch_session` for many sessions, in chunks of 500."""
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        await conn.execute(
            _TOUCH_SESSIONS, {"session_ids": chunk, "now": now, "unless_after": unless_after}
        )
