"""Announcements in the device's local store: kept once by id, listed newest first.

Synchronous SQL, run in :class:`~chinwag.client.store.Store`'s worker thread; an
announcement event replayed (an overlap after a reconnect) finds its id stored and is
neither stored nor announced again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from chinwag.client.models import Announcement

__all__ = ["list_announcements", "store_announcement"]


def store_announcement(conn: sqlite3.Connection, data: dict[str, Any]) -> Announcement | None:
    """Store ``{"id", "parts", "sent_at"}``; None when it was already stored."""
    cur = conn.execute(
        "INSERT INTO announcements (id, parts, sent_at) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (data["id"], orjson.dumps(data["parts"]).decode(), data.get("sent_at")),
    )
    return Announcement.from_json(data) if cur.rowcount == 1 else None


def list_announcements(conn: sqlite3.Connection) -> list[Announcement]:
    rows = conn.execute(
        "SELECT id, parts, sent_at FROM announcements ORDER BY sent_at DESC, id"
    ).fetchall()
    return [
        Announcement.from_json({"id": i, "parts": orjson.loads(parts), "sent_at": at})
        for i, parts, at in rows
    ]
