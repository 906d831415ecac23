"""Webhook endpoints and their deliveries. SQL only.

Deliveries are made from the outbox (``webhook_outbox.py``), one per subscribed
endpoint. The worker claims due rows by setting a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so workers on several nodes take different rows; SQLite has one writer
anyway); a worker that dies mid-send leaves a lease that simply runs out, and the row is
sent again (at least once, as Standard Webhooks expects: receivers deduplicate on
``webhook-id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.apps import lock_app
from chinwag.server.storage.schema import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_event_types,
)

__all__ = [
    "DeliveryRow",
    "DueDelivery",
    "EndpointRow",
    "claim_due",
    "delete_endpoint",
    "disable_endpoint",
    "get_delivery",
    "get_endpoint",
    "insert_endpoint",
    "list_deliveries",
    "list_endpoints",
    "purge_finished",
    "record_attempt",
    "replay",
    "update_endpoint",
]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: str
    app_id: str
    url: str
    description: str
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_until: float | None
    disabled_reason: str | None
    created_at: float
    updated_at: float
    event_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    msg_id: str
    endpoint_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: int
    msg_id: str
    endpoint_id: str
    payload: str
    attempts: int
    url: str
    secrets: tuple[str, ...]
    """The endpoint's secret, and the previous one while its overlap lasts."""
    lease_until: float
    """The claim's lease, which :func:`record_attempt` must still find to record."""


_ENDPOINT_FIELDS = [f for f in EndpointRow.__slots__ if f != "event_types"]


def _endpoint(row: Any, types: tuple[str, ...]) -> EndpointRow:
    values = dict(zip(_ENDPOINT_FIELDS, row, strict=True))
    values["enabled"] = bool(values["enabled"])
    return EndpointRow(**values, event_types=types)


async def _types(conn: AsyncConnection, endpoint_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {e: [] for e in endpoint_ids}
    rows = await conn.execute(
        select(webhook_event_types.c.endpoint_id, webhook_event_types.c.event_type)
        .where(webhook_event_types.c.endpoint_id.in_(endpoint_ids))
        .order_by(webhook_event_types.c.event_type)
    )
    for endpoint_id, event_type in rows:
        found[endpoint_id].append(event_type)
    return found


async def list_endpoints(conn: AsyncConnection, app_id: str) -> list[EndpointRow]:
    rows = list(
        await conn.execute(
            select(*[webhook_endpoints.c[f] for f in _ENDPOINT_FIELDS])
            .where(webhook_endpoints.c.app_id == app_id)
            .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
        )
    )
    types = await _types(conn, [r[0] for r in rows])
    return [_endpoint(r, tuple(types[r[0]])) for r in rows]


async def get_endpoint(conn: AsyncConnection, app_id: str, endpoint_id: str) -> EndpointRow | None:
    row = (
        await conn.execute(
            select(*[webhook_endpoints.c[f] for f in _ENDPOINT_FIELDS]).where(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.app_id == app_id
            )
        )
    ).first()
    if row is None:
        return None
    return _endpoint(row, tuple((await _types(conn, [endpoint_id]))[endpoint_id]))


async def _set_types(conn: AsyncConnection, endpoint: str, app_id: str, types: list[str]) -> None:
    await conn.execute(
        delete(webhook_event_types).where(webhook_event_types.c.endpoint_id == endpoint)
    )
    if types:
        await conn.execute(
            insert(webhook_event_types),
            [{"endpoint_id": endpoint, "app_id": app_id, "event_type": t} for t in types],
        )


async def count_endpoints_locked(conn: AsyncConnection, app_id: str) -> int:
    """The app's endpoints, counted under its row lock (``apps.lock_app``), so a creation
    that counts and then inserts is never interleaved with another (the per-app cap)."""
    await lock_app(conn, app_id)
    count = select(func.count()).select_from(webhook_endpoints)
    return int(await conn.scalar(count.where(webhook_endpoints.c.app_id == app_id)) or 0)


async def insert_endpoint(conn: AsyncConnection, values: dict[str, Any], types: list[str]) -> None:
    await conn.execute(insert(webhook_endpoints).values(**values))
    await _set_types(conn, values["id"], values["app_id"], types)


async def update_endpoint(
    conn: AsyncConnection, endpoint: EndpointRow, values: dict[str, Any], types: list[str] | None
) -> None:
    if values:
        await conn.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint.id).values(**values)
        )
    if types is not None:
        await _set_types(conn, endpoint.id, endpoint.app_id, types)


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> None:
    """Its event types and deliveries go with it (ON DELETE CASCADE, and explicitly for
    SQLite connections that do not enforce foreign keys)."""
    for table in (webhook_deliveries, webhook_event_types):
        await conn.execute(delete(table).where(table.c.endpoint_id == endpoint_id))
    await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, *, reason: str, now: float
) -> None:
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason[:300], updated_at=now)
    )


_DUE = and_(
    webhook_deliveries.c.status == PENDING,
    webhook_deliveries.c.next_attempt_at <= bindparam("now", type_=Float),
    (webhook_deliveries.c.lease_until.is_(None))
    | (webhook_deliveries.c.lease_until < bindparam("now", type_=Float)),
)


async def claim_due(
    conn: AsyncConnection, *, now: float, lease: float, limit: int
) -> list[DueDelivery]:
    """Take up to ``limit`` due deliveries of enabled endpoints for ``lease`` seconds."""
    due = (
        select(webhook_deliveries.c.id)
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(_DUE, webhook_endpoints.c.enabled.is_(True))
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(of=webhook_deliveries, skip_locked=True)
    )
    ids = [int(r[0]) for r in await conn.execute(due, {"now": now})]
    if not ids:
        return []
    lease_until = now + lease  # one value: record_attempt matches it exactly
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(ids))
        .values(lease_until=lease_until)
    )
    rows = await conn.execute(
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.msg_id,
            webhook_deliveries.c.endpoint_id,
            webhook_deliveries.c.payload,
            webhook_deliveries.c.attempts,
            webhook_endpoints.c.url,
            webhook_endpoints.c.secret,
            webhook_endpoints.c.previous_secret,
            webhook_endpoints.c.previous_secret_until,
        )
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(webhook_deliveries.c.id.in_(ids))
        .order_by(webhook_deliveries.c.id)
    )
    return [_due(row, now, lease_until) for row in rows]


def _due(row: Any, now: float, lease_until: float) -> DueDelivery:
    id_, msg_id, endpoint_id, payload, attempts, url, secret, previous, until = row
    keys = (secret,) if previous is None or (until or 0) <= now else (secret, previous)
    return DueDelivery(
        int(id_), msg_id, endpoint_id, payload, int(attempts), url, keys, lease_until
    )


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: int,
    *,
    lease_until: float,
    status: str,
    attempts: int,
    next_attempt_at: float,
    http_status: int | None,
    error: str | None,
    now: float,
) -> bool:
    """The outcome of one try: delivered, pending again at ``next_attempt_at``, or failed;
    whether it was recorded.

    Only while the delivery still holds the claim's lease (``lease_until``): a replay
    asked for during the try (``replay`` clears the lease) must still be sent, not be
    overwritten by the try's "delivered", and a try that outlived its lease, so that
    another worker claimed the delivery again, leaves the record to that worker."""
    result = await conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.lease_until == lease_until,
        )
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            lease_until=None,
            last_status=http_status,
            last_error=None if error is None else error[:300],
            delivered_at=now if status == DELIVERED else None,
        )
    )
    return bool(result.rowcount)


_DELIVERY_FIELDS = list(DeliveryRow.__slots__)


def _delivery(row: Any) -> DeliveryRow:
    values = dict(zip(_DELIVERY_FIELDS, row, strict=True))
    return DeliveryRow(**{**values, "id": int(values["id"]), "attempts": int(values["attempts"])})


async def list_deliveries(
    conn: AsyncConnection, endpoint_id: str, *, status: str | None, before: int | None, limit: int
) -> list[DeliveryRow]:
    """Newest first; ``before``: a delivery id, for the next page."""
    query = select(*[webhook_deliveries.c[f] for f in _DELIVERY_FIELDS]).where(
        webhook_deliveries.c.endpoint_id == endpoint_id
    )
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    rows = await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return [_delivery(r) for r in rows]


async def get_delivery(
    conn: AsyncConnection, endpoint_id: str, delivery_id: int
) -> DeliveryRow | None:
    row = (
        await conn.execute(
            select(*[webhook_deliveries.c[f] for f in _DELIVERY_FIELDS]).where(
                webhook_deliveries.c.id == delivery_id,
                webhook_deliveries.c.endpoint_id == endpoint_id,
            )
        )
    ).first()
    return _delivery(row) if row is not None else None


async def replay(conn: AsyncConnection, delivery_id: int, *, now: float) -> None:
    """Send it again now, same ``webhook-id``, with a fresh retry schedule."""
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None)
    )


async def purge_finished(conn: AsyncConnection, *, before: float) -> int:
    """Forget delivered and failed deliveries created before ``before`` (the listing and
    replay window), so the table holds what is pending plus a bounded history."""
    result = await conn.execute(
        delete(webhook_deliveries).where(
            webhook_deliveries.c.status.in_([DELIVERED, FAILED]),
            webhook_deliveries.c.created_at < before,
        )
    )
    return int(result.rowcount or 0)
