"""Platform API keys (only the SHA-256 of each secret is stored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.schema import api_keys

__all__ = ["ApiKeyRecord", "get_api_key", "insert_api_key", "list_api_keys", "revoke", "touch"]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    role: str
    app_id: str | None
    label: str | None
    secret_hash: bytes
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


_COLUMNS = [api_keys.c[f] for f in ApiKeyRecord.__slots__]


def _record(row: Any) -> ApiKeyRecord:
    id_, role, app_id, label, secret_hash, created, last_used, revoked = row
    return ApiKeyRecord(
        id=id_,
        role=role,
        app_id=app_id,
        label=label,
        secret_hash=bytes(secret_hash),
        created_at=float(created),
        last_used_at=None if last_used is None else float(last_used),
        revoked_at=None if revoked is None else float(revoked),
    )


async def insert_api_key(conn: AsyncConnection, record: ApiKeyRecord) -> None:
    await conn.execute(insert(api_keys).values({f: getattr(record, f) for f in record.__slots__}))


async def get_api_key(conn: AsyncConnection, key_id: str) -> ApiKeyRecord | None:
    row = (await conn.execute(select(*_COLUMNS).where(api_keys.c.id == key_id))).first()
    return _record(row) if row else None


async def list_api_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    rows = await conn.execute(select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_record(r) for r in rows]


async def revoke(conn: AsyncConnection, key_id: str, *, now: float) -> bool:
    """False when there is no such key or it was already revoked."""
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def touch(conn: AsyncConnection, key_id: str, *, now: float, unless_after: float) -> None:
    """Set ``last_used_at`` unless it is already later than ``unless_after`` (so concurrent
    requests in the same minute write once between them)."""
    await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            (api_keys.c.last_used_at.is_(None)) | (api_keys.c.last_used_at <= unless_after),
        )
        .values(last_used_at=now)
    )
