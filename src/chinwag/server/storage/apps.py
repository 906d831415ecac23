"""Apps and their signing keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.records import AppRecord, KeyRecord
from chinwag.server.storage.schema import app_keys, apps

__all__ = [
    "delete_key",
    "get_app",
    "get_key",
    "insert_app",
    "insert_key",
    "list_apps",
    "list_keys",
    "set_key_enabled",
    "update_app",
]


def _app(row: Any) -> AppRecord:
    return AppRecord(**row._mapping)


def _key(row: Any) -> KeyRecord:
    return KeyRecord(**row._mapping)


async def insert_app(conn: AsyncConnection, record: AppRecord) -> None:
    await conn.execute(insert(apps).values({f: getattr(record, f) for f in record.__slots__}))


async def get_app(conn: AsyncConnection, app_id: str) -> AppRecord | None:
    row = (await conn.execute(select(apps).where(apps.c.id == app_id))).first()
    return _app(row) if row else None


async def list_apps(conn: AsyncConnection) -> list[AppRecord]:
    rows = await conn.execute(select(apps).order_by(apps.c.created_at, apps.c.id))
    return [_app(r) for r in rows]


async def update_app(conn: AsyncConnection, app_id: str, changes: dict[str, Any]) -> None:
    await conn.execute(update(apps).where(apps.c.id == app_id).values(**changes))


async def insert_key(conn: AsyncConnection, record: KeyRecord) -> None:
    await conn.execute(insert(app_keys).values({f: getattr(record, f) for f in record.__slots__}))


async def get_key(conn: AsyncConnection, kid: str, app_id: str | None = None) -> KeyRecord | None:
    query = select(app_keys).where(app_keys.c.kid == kid)
    if app_id is not None:
        query = query.where(app_keys.c.app_id == app_id)
    row = (await conn.execute(query)).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, app_id: str) -> list[KeyRecord]:
    rows = await conn.execute(
        select(app_keys).where(app_keys.c.app_id == app_id).order_by(app_keys.c.created_at)
    )
    return [_key(r) for r in rows]


async def set_key_enabled(conn: AsyncConnection, kid: str, enabled: bool) -> bool:
    result = await conn.execute(
        update(app_keys).where(app_keys.c.kid == kid).values(enabled=enabled)
    )
    return bool(result.rowcount)


async def delete_key(conn: AsyncConnection, kid: str) -> bool:
    result = await conn.execute(delete(app_keys).where(app_keys.c.kid == kid))
    return bool(result.rowcount)
