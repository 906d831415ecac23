"""Where SQLite and PostgreSQL differ, in one module per engine (``sqlite.py``, ``postgres.py``).

Storage modules write SQLAlchemy Core once and ask this package for the few things that
differ: the dialect's ``INSERT`` (for ``ON CONFLICT``), whether to lock rows, and the raw
``sqlite3`` connection for prepared statements' fast path (``prepared.py``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from chinwag.server.storage.engines import postgres, sqlite

__all__ = ["insert", "is_postgres", "locked", "locks_rows", "postgres", "sqlite"]

S = TypeVar("S", bound=Select)  # type: ignore[type-arg]


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def locks_rows(conn: AsyncConnection) -> bool:
    """Whether a read that orders writes must lock its rows (``FOR UPDATE``) on this engine:
    PostgreSQL runs transactions in parallel; SQLite's single writer excludes every other."""
    return is_postgres(conn)


def insert(conn: AsyncConnection, table: Any) -> Any:
    """The dialect's ``INSERT`` for ``table``: both offer ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``, spelled per dialect in SQLAlchemy."""
    return (postgres.insert if is_postgres(conn) else sqlite.insert)(table)


def locked(conn: AsyncConnection, query: S) -> S:
    """``query`` locking its rows where the engine needs it (PostgreSQL's ``FOR NO KEY UPDATE``);
    unchanged on SQLite, whose single writer already excludes every other."""
    return postgres.locked(query) if locks_rows(conn) else query
