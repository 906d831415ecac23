"""The audit log: who did what to which thing, when and from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.schema import audit_log

__all__ = ["AuditEntry", "insert_entry", "list_entries"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    caller: str
    action: str
    app_id: str | None
    target: str
    address: str | None
    data: dict[str, Any]


async def insert_entry(
    conn: AsyncConnection,
    *,
    at: float,
    caller: str,
    action: str,
    app_id: str | None,
    target: str,
    address: str | None,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        insert(audit_log).values(
            at=at,
            caller=caller[:64],
            action=action[:64],
            app_id=app_id,
            target=target[:600],
            address=None if address is None else address[:64],
            data=orjson.dumps(data).decode(),
        )
    )


async def list_entries(
    conn: AsyncConnection,
    *,
    app_id: str | None,
    since: float | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first; ``before_id`` continues a page."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if app_id is not None:
        query = query.where(audit_log.c.app_id == app_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    rows = await conn.execute(query)
    return [
        AuditEntry(
            id=int(r.id),
            at=float(r.at),
            caller=r.caller,
            action=r.action,
            app_id=r.app_id,
            target=r.target,
            address=r.address,
            data=orjson.loads(r.data),
        )
        for r in rows
    ]
