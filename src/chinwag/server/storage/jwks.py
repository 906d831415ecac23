"""An app's JWKS URL (``app_jwks``); the key sets themselves live only in memory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import app_jwks

__all__ = ["JwksSource", "delete_jwks_url", "get_jwks_source", "get_jwks_url", "set_jwks_url"]

_GET_SOURCE = Prepared(
    select(app_jwks.c.url, app_jwks.c.updated_at).where(app_jwks.c.app_id == bindparam("app_id"))
)


@dataclass(frozen=True, slots=True)
class JwksSource:
    """The URL and when it was last registered: registering the same URL again is how an
    operator makes every node drop its cached copy (say, after removing a leaked key)."""

    url: str
    registered_at: float


async def get_jwks_source(conn: AsyncConnection, app_id: str) -> JwksSource | None:
    row = await _GET_SOURCE.first(conn, {"app_id": app_id})
    return JwksSource(str(row[0]), float(row[1])) if row else None


async def get_jwks_url(conn: AsyncConnection, app_id: str) -> str | None:
    source = await get_jwks_source(conn, app_id)
    return source.url if source else None


async def set_jwks_url(conn: AsyncConnection, app_id: str, url: str, now: float) -> None:
    """Insert or replace (the caller holds the app's row, so no race between the two)."""
    result = await conn.execute(
        update(app_jwks).where(app_jwks.c.app_id == app_id).values(url=url, updated_at=now)
    )
    if not result.rowcount:
        await conn.execute(
            insert(app_jwks).values(app_id=app_id, url=url, created_at=now, updated_at=now)
        )


async def delete_jwks_url(conn: AsyncConnection, app_id: str) -> bool:
    result = await conn.execute(delete(app_jwks).where(app_jwks.c.app_id == app_id))
    return bool(result.rowcount)
