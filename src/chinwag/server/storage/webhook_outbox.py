"""The webhook outbox: events owed to an app's endpoints, written with the change. SQL only.

:func:`enqueue` runs inside the transaction that appends a stream event: one
``INSERT … SELECT`` writes one ``webhook_outbox`` row when any enabled endpoint of the app
subscribed to the event type (none: nothing written), so an event is queued exactly when
its change committed, and a restart loses nothing. The worker's :func:`expand` then makes
one delivery row per subscribed endpoint, off the send path (writing five rows with five
copies of the payload in the send transaction cost a 1:1 send about half its time;
``bench/webhooks.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement, Float, Insert, bindparam, delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_event_types,
    webhook_outbox,
)
from chinwag.server.storage.webhooks import PENDING

__all__ = ["ENQUEUE_STATEMENT", "enqueue", "enqueue_statement", "expand"]


_SUBSCRIBED = (
    select(literal(1))
    .select_from(
        webhook_event_types.join(
            webhook_endpoints, webhook_endpoints.c.id == webhook_event_types.c.endpoint_id
        )
    )
    .where(
        webhook_event_types.c.app_id == bindparam("app_id"),
        webhook_event_types.c.event_type == bindparam("event_type"),
        webhook_endpoints.c.enabled.is_(True),
    )
    .exists()
)


def enqueue_statement(*only_if: ColumnElement[bool]) -> Insert:
    """The outbox row's ``INSERT … SELECT``, writing only when ``only_if`` also holds.
    Parameters ``app_id``, ``event_type``, ``payload``, ``now`` (``storage/outbox.py``
    joins it to the push enqueue, and on a send to the message's own statement, on
    PostgreSQL)."""
    return insert(webhook_outbox).from_select(
        ["app_id", "event_type", "payload", "created_at"],
        select(
            bindparam("app_id"),
            bindparam("event_type"),
            bindparam("payload"),
            bindparam("now", type_=Float),
        ).where(_SUBSCRIBED, *only_if),
    )


ENQUEUE_STATEMENT = enqueue_statement()
_ENQUEUE = Prepared(ENQUEUE_STATEMENT)


async def enqueue(
    conn: AsyncConnection, *, app_id: str, event_type: str, payload: str, now: float
) -> bool:
    """One outbox row for the event when some enabled endpoint of the app subscribed to
    its type (none: nothing written), in the caller's transaction. One row, however many
    endpoints: the per-endpoint deliveries are made by :func:`expand`, off the send path."""
    params = {"app_id": app_id, "event_type": event_type, "payload": payload, "now": now}
    return await _ENQUEUE.rowcount(conn, params) > 0


_FAN_OUT = insert(webhook_deliveries).from_select(
    [
        "msg_id",
        "endpoint_id",
        "app_id",
        "event_type",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ],
    select(
        bindparam("msg_id"),
        webhook_event_types.c.endpoint_id,
        webhook_event_types.c.app_id,
        webhook_event_types.c.event_type,
        bindparam("payload"),
        literal(PENDING),
        literal(0),
        bindparam("created_at", type_=Float),
        bindparam("created_at", type_=Float),
    )
    .select_from(
        webhook_event_types.join(
            webhook_endpoints, webhook_endpoints.c.id == webhook_event_types.c.endpoint_id
        )
    )
    .where(
        webhook_event_types.c.app_id == bindparam("app_id"),
        webhook_event_types.c.event_type == bindparam("event_type"),
        webhook_endpoints.c.enabled.is_(True),
    ),
)


async def expand(conn: AsyncConnection, *, limit: int, new_msg_id: Callable[[], str]) -> int:
    """Turn up to ``limit`` outbox events into one delivery per subscribed endpoint (the
    same ``webhook-id`` for all of them: it names the event) and drop them from the
    outbox, in the caller's transaction, so each event is fanned out exactly once."""
    rows = list(
        await conn.execute(
            select(webhook_outbox)
            .order_by(webhook_outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        event = row._mapping
        await conn.execute(
            _FAN_OUT,
            {"msg_id": new_msg_id(), "app_id": event["app_id"], "event_type": event["event_type"],
             "payload": event["payload"], "created_at": event["created_at"]},
        )  # fmt: skip
    if rows:
        await conn.execute(
            delete(webhook_outbox).where(webhook_outbox.c.id.in_([r.id for r in rows]))
        )
    return len(rows)
