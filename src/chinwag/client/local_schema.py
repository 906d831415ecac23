"""The device's local SQLite schema, and bringing a store made by an older SDK up to it.

Tables are created if missing; a column added since is added in place (``ALTER TABLE ...
ADD COLUMN`` with a default), so a device keeps its data and its stream cursor across an
SDK upgrade. Queries name their columns or read ``SELECT *`` in this column order (an
added column comes last in both a new and an upgraded table).
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA", "open_schema"]

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    participants TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    is_distinct INTEGER NOT NULL DEFAULT 0,
    created_at REAL,
    created_by TEXT,
    last_position INTEGER NOT NULL DEFAULT 0,
    last_message_at REAL,
    read_position INTEGER NOT NULL DEFAULT 0,
    delivered_position INTEGER NOT NULL DEFAULT 0,
    unread_count INTEGER NOT NULL DEFAULT 0,
    has_left INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    position INTEGER,
    sender_id TEXT NOT NULL,
    parts TEXT NOT NULL,
    sent_at REAL,
    state TEXT NOT NULL DEFAULT 'sent',
    deleted INTEGER NOT NULL DEFAULT 0,
    bot INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_position ON messages (conversation_id, position);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    parts TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS announcements (
    id TEXT PRIMARY KEY, parts TEXT NOT NULL, sent_at REAL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, display_name TEXT, avatar_url TEXT, anonymous INTEGER
);
"""

_ADDED_COLUMNS = (("messages", "bot", "INTEGER NOT NULL DEFAULT 0"),)
"""Columns added after a table was first shipped: (table, column, definition)."""


def open_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    for table, column, definition in _ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
