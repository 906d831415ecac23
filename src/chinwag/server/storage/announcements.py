"""Announcements: each one's id and parts, kept so a retry is answered, not repeated. SQL
only (the copies users read are events in their streams)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage import engines
from chinwag.server.storage.schema import announcements

__all__ = ["AnnouncementRow", "get_announcement", "insert_announcement"]


@dataclass(frozen=True, slots=True)
class AnnouncementRow:
    id: str
    app_id: str
    public_id: str
    parts: str
    sent_at: float
    recipient_count: int


async def insert_announcement(conn: AsyncConnection, row: AnnouncementRow) -> bool:
    """False (and nothing written) when the app already used ``row.public_id``."""
    values = {f: getattr(row, f) for f in AnnouncementRow.__slots__}
    result = await conn.execute(
        engines.insert(conn, announcements).values(values).on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)


async def get_announcement(
    conn: AsyncConnection, app_id: str, public_id: str
) -> AnnouncementRow | None:
    row = (
        await conn.execute(
            select(*[announcements.c[f] for f in AnnouncementRow.__slots__]).where(
                announcements.c.app_id == app_id, announcements.c.public_id == public_id
            )
        )
    ).first()
    if row is None:
        return None
    id_, app, public, parts, sent, count = row
    return AnnouncementRow(id_, app, public, parts, float(sent), int(count))
